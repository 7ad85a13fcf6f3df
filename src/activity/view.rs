//! Derived values and timeline events as the HTTP API shows them.
//!
//! Everything here is computed at read time from a profile's [`Activity`] and the RFM
//! index: day counts and bonus expiry against the clock, interests against the
//! database's window, RFM against the whole database as it is now. Pure.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use super::rank::Rfm;
use super::state::{Activity, DAY_US, Recent, Stored};

/// Interests shown on a profile.
pub const TOP_INTERESTS: usize = 10;
/// Favorite stores shown on a profile.
pub const TOP_STORES: usize = 5;
/// Abandoned cart lines shown on a profile.
pub const CART_LINES: usize = 50;

/// A profile's activity as read now.
#[derive(Clone, Copy)]
pub struct Derived<'a> {
    /// The activity, if the profile has any.
    pub activity: Option<&'a Activity>,
    /// Its RFM scores, if it has a completed receipt.
    pub rfm: Option<Rfm>,
    /// Now.
    pub now: Timestamp,
    /// Today (UTC).
    pub today: Date,
    /// The database's interest window in days.
    pub window_days: u32,
}

fn at(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whole UTC days from `from` to `to`.
pub fn days_between(from: Date, to: Date) -> i64 {
    from.until(to).map_or(0, |span| i64::from(span.get_days()))
}

/// The UTC calendar day of an instant.
pub fn utc_date(t: Timestamp) -> Date {
    jiff::tz::Offset::UTC.to_datetime(t).date()
}

/// `stats`: receipt statistics and day counts.
#[derive(Serialize, Default)]
pub struct Stats {
    receipts_count: u64,
    receipts_total: f64,
    last_receipt_total: Option<f64>,
    average_receipt: Option<f64>,
    average_items: Option<f64>,
    first_receipt_at: Option<Timestamp>,
    last_receipt_at: Option<Timestamp>,
    days_since_first_receipt: Option<i64>,
    days_since_last_receipt: Option<i64>,
    /// Set by the document, which knows the registration field.
    pub days_since_registration: i64,
}

/// `rfm`.
#[derive(Serialize)]
pub struct RfmView {
    r: u8,
    f: u8,
    m: u8,
    segment: &'static str,
}

/// One of `interests`.
#[derive(Serialize)]
pub struct Interest<'a> {
    category: &'a str,
    views: usize,
    last_view_at: Timestamp,
}

/// One of `favorite_stores`.
#[derive(Serialize)]
pub struct FavoriteStore<'a> {
    id: &'a str,
    name: Option<&'a str>,
    receipts: u32,
}

/// One line of `abandoned_cart`.
#[derive(Serialize)]
pub struct CartLine<'a> {
    sku: &'a str,
    name: Option<&'a str>,
    price: Option<f64>,
    quantity: f64,
    added_at: Timestamp,
}

/// `bonuses`.
#[derive(Serialize, Default)]
pub struct Bonuses {
    active: f64,
    pending_activation: f64,
    pending_deactivation: f64,
    next_deactivation_at: Option<Timestamp>,
    next_deactivation_amount: Option<f64>,
}

/// A kept mailing, promo code or poll: its payload with `at` first.
pub struct RecentView<'a>(&'a Recent);

impl Serialize for RecentView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        // The payload is an object we wrote ourselves; splice `at` in front of it.
        let body = r.data.strip_prefix('{').unwrap_or("}");
        let sep = if body == "}" { "" } else { "," };
        let text = format!("{{\"at\":\"{}\"{sep}{body}", at(r.time));
        RawValue::from_string(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'a> Derived<'a> {
    /// `stats` (without `days_since_registration`).
    pub fn stats(&self) -> Stats {
        let Some(a) = self.activity else {
            return Stats::default();
        };
        let s = &a.summary;
        if s.count == 0 {
            return Stats::default();
        }
        let n = f64::from(s.count);
        let first = s.first.map(at);
        let last = s.last.map(|(t, _)| at(t));
        let days = |t: Option<Timestamp>| t.map(|t| days_between(utc_date(t), self.today));
        Stats {
            receipts_count: u64::from(s.count),
            receipts_total: s.total.to_f64(),
            last_receipt_total: Some(s.last_total.to_f64()),
            average_receipt: Some(round4(s.total.to_f64() / n)),
            average_items: Some(round4(s.items.to_f64() / n)),
            first_receipt_at: first,
            last_receipt_at: last,
            days_since_first_receipt: days(first),
            days_since_last_receipt: days(last),
            days_since_registration: 0,
        }
    }

    /// `rfm`, `null` without a completed receipt.
    pub fn rfm(&self) -> Option<RfmView> {
        self.rfm.map(|r| RfmView {
            r: r.r,
            f: r.f,
            m: r.m,
            segment: r.segment(),
        })
    }

    /// `interests`: the top categories viewed within the window and not bought since.
    pub fn interests(&self) -> Vec<Interest<'a>> {
        let Some(a) = self.activity else {
            return Vec::new();
        };
        let since = self.now.as_microsecond() - i64::from(self.window_days) * DAY_US;
        a.summary
            .interests(since, TOP_INTERESTS)
            .into_iter()
            .map(|(category, views, last)| Interest {
                category,
                views,
                last_view_at: at(last),
            })
            .collect()
    }

    /// `favorite_stores`.
    pub fn favorite_stores(&self) -> Vec<FavoriteStore<'a>> {
        let Some(a) = self.activity else {
            return Vec::new();
        };
        a.summary
            .favorite_stores(TOP_STORES)
            .into_iter()
            .map(|(id, name, receipts)| FavoriteStore { id, name, receipts })
            .collect()
    }

    /// `abandoned_cart`, newest first.
    pub fn abandoned_cart(&self) -> Vec<CartLine<'a>> {
        let Some(a) = self.activity else {
            return Vec::new();
        };
        a.summary
            .abandoned_cart()
            .into_iter()
            .take(CART_LINES)
            .filter_map(|(sku, c)| {
                let line = c.added.as_ref()?;
                Some(CartLine {
                    sku,
                    name: line.name.as_deref(),
                    price: line.price.map(|p| p.to_f64()),
                    quantity: line.quantity.to_f64(),
                    added_at: at(line.time),
                })
            })
            .collect()
    }

    /// `bonuses` at this moment.
    pub fn bonuses(&self) -> Bonuses {
        let Some(a) = self.activity else {
            return Bonuses::default();
        };
        let b = a.summary.bonuses_at(self.now.as_microsecond());
        Bonuses {
            active: b.active.to_f64(),
            pending_activation: b.pending_activation.to_f64(),
            pending_deactivation: b.pending_deactivation.to_f64(),
            next_deactivation_at: b.next_deactivation.map(|(t, _)| at(t)),
            next_deactivation_amount: b.next_deactivation.map(|(_, x)| x.to_f64()),
        }
    }

    /// `mailings`, newest first.
    pub fn mailings(&self) -> Vec<RecentView<'a>> {
        self.recent(|a| &a.summary.mailings)
    }

    /// `promo_codes`, newest first.
    pub fn promo_codes(&self) -> Vec<RecentView<'a>> {
        self.recent(|a| &a.summary.promo_codes)
    }

    /// `polls`, newest first.
    pub fn polls(&self) -> Vec<RecentView<'a>> {
        self.recent(|a| &a.summary.polls)
    }

    fn recent(&self, list: impl Fn(&'a Activity) -> &'a Vec<Recent>) -> Vec<RecentView<'a>> {
        self.activity
            .map(|a| list(a).iter().map(RecentView).collect())
            .unwrap_or_default()
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A timeline event as `GET .../activity` shows it.
pub struct EventView<'a>(pub &'a Stored);

impl Serialize for EventView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("id", &e.seq.to_string())?;
        map.serialize_entry("type", e.type_name())?;
        map.serialize_entry("category", e.kind().category())?;
        map.serialize_entry("time", &at(e.time))?;
        let data: &RawValue = serde_json::from_str(&e.data).map_err(serde::ser::Error::custom)?;
        map.serialize_entry("data", data)?;
        map.end()
    }
}

/// A page of a timeline: newest first, only `kinds` (all if empty), strictly older
/// than `before` (a `(time, seq)` cursor); returns the events and the next cursor.
pub fn page<'a>(
    activity: &'a Activity,
    kinds: &[super::Kind],
    before: Option<(i64, u64)>,
    limit: usize,
) -> (Vec<&'a Stored>, Option<(i64, u64)>) {
    let end = match before {
        Some(c) => activity.timeline.partition_point(|s| (s.time, s.seq) < c),
        None => activity.timeline.len(),
    };
    let mut out = Vec::with_capacity(limit.min(end));
    let mut more = false;
    for s in activity.timeline.range(..end).rev() {
        if !kinds.is_empty() && !kinds.contains(&s.kind()) {
            continue;
        }
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(s);
    }
    let next = if more {
        out.last().map(|s| (s.time, s.seq))
    } else {
        None
    };
    (out, next)
}
