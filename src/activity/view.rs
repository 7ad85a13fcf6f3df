//! Derived values and timeline events as the HTTP API shows them.
//!
//! Everything here is computed at read time from a profile's [`Activity`] and the RFM
//! index: day counts and bonus expiry against the clock, interests against the
//! database's window, RFM against the whole database as it is now. Pure.

use jiff::Timestamp;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use super::rank::Rfm;
use super::state::{Activity, DAY_US, Recent, Stored, day_of};

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
    /// Now: day counts, bonus expiry and the interest window are against it.
    pub now: Timestamp,
    /// The database's interest window in days.
    pub window_days: u32,
}

fn at(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whole UTC days from `from` to `to`: day numbers subtracted, the same count as
/// calendar arithmetic and cheaper on the lookup path.
pub fn days_between(from: Timestamp, to: Timestamp) -> i64 {
    i64::from(day_of(to.as_microsecond())) - i64::from(day_of(from.as_microsecond()))
}

/// `stats`: receipt statistics and day counts.
#[derive(Serialize, Default)]
pub struct Stats {
    #[serde(flatten)]
    head: StatsHead,
    days_since_first_receipt: Option<i64>,
    days_since_last_receipt: Option<i64>,
    /// Set by the document, which knows the registration field.
    pub days_since_registration: i64,
}

/// The members of `stats` that do not change by the day: what a digest keeps.
#[derive(Serialize, Default)]
struct StatsHead {
    receipts_count: u64,
    receipts_total: f64,
    last_receipt_total: Option<f64>,
    average_receipt: Option<f64>,
    average_items: Option<f64>,
    first_receipt_at: Option<Timestamp>,
    last_receipt_at: Option<Timestamp>,
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

impl From<super::state::BonusTotals> for Bonuses {
    fn from(b: super::state::BonusTotals) -> Self {
        Bonuses {
            active: b.active.to_f64(),
            pending_activation: b.pending_activation.to_f64(),
            pending_deactivation: b.pending_deactivation.to_f64(),
            next_deactivation_at: b.next_deactivation.map(|(t, _)| at(t)),
            next_deactivation_amount: b.next_deactivation.map(|(_, x)| x.to_f64()),
        }
    }
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
        let days = |t: Option<Timestamp>| t.map(|t| days_between(t, self.now));
        Stats {
            head: StatsHead {
                receipts_count: u64::from(s.count),
                receipts_total: s.total.to_f64(),
                last_receipt_total: Some(s.last_total.to_f64()),
                average_receipt: Some(round4(s.total.to_f64() / n)),
                average_items: Some(round4(s.items.to_f64() / n)),
                first_receipt_at: first,
                last_receipt_at: last,
            },
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
        a.rendered
            .get(a)
            .interests(self.since())
            .into_iter()
            .map(|(views, category, _, last)| Interest {
                category,
                views,
                last_view_at: at(last),
            })
            .collect()
    }

    /// The start of the interest window.
    fn since(&self) -> i64 {
        self.now.as_microsecond() - i64::from(self.window_days) * DAY_US
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
        match self.activity {
            Some(a) => a.summary.bonuses_at(self.now.as_microsecond()).into(),
            None => Bonuses::default(),
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

/// What a whole document shows of an activity that does not depend on when it is read,
/// rendered on the first read after a change and kept until the next one (see
/// [`Rendered`]): the lookup path then copies bytes from two blocks instead of walking
/// a dozen scattered maps.
#[derive(Debug, Default)]
pub struct Digest {
    /// Back to back: `stats` from `{` through `last_receipt_at` (no closing brace, no
    /// day counts; empty without a completed receipt), `,"favorite_stores":[..],
    /// "abandoned_cart":[..]`, `,"mailings":[..],"promo_codes":[..],"polls":[..]`, then
    /// each viewed category's raw name and rendered last-view time.
    text: Box<str>,
    /// Where the parts of `text` end: stats head, stores and cart, recent lists.
    ends: [u32; 3],
    first_day: i32,
    last_day: i32,
    /// Back to back: per viewed category its text end, last-view end and view count,
    /// then its view times ascending; then per bonus its status, amount (units) and
    /// expiry (`i64::MIN` for none).
    nums: Box<[i64]>,
    /// Viewed categories in `nums`, and where the bonuses begin there.
    categories: u32,
    bonus_start: u32,
}

impl Digest {
    /// Categories viewed since `since` and not bought after: views in the window, name,
    /// rendered and raw last view; most viewed first (then the latest, then by name),
    /// at most [`TOP_INTERESTS`]. The one place interests are ranked.
    fn interests(&self, since: i64) -> Vec<(usize, &str, &str, i64)> {
        let mut rows = Vec::new();
        let (mut text_at, mut i) = (self.ends[2] as usize, 0usize);
        for _ in 0..self.categories {
            let (name_end, last_end, count) = (
                self.nums[i] as usize,
                self.nums[i + 1] as usize,
                self.nums[i + 2] as usize,
            );
            let views = &self.nums[i + 3..i + 3 + count];
            let n = count - views.partition_point(|v| *v < since);
            if n > 0 {
                rows.push((
                    n,
                    &self.text[text_at..name_end],
                    &self.text[name_end..last_end],
                    views[count - 1],
                ));
            }
            text_at = last_end;
            i += 3 + count;
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.3.cmp(&a.3)).then(a.1.cmp(b.1)));
        rows.truncate(TOP_INTERESTS);
        rows
    }

    /// The bonuses: status, amount, expiry.
    fn bonuses(&self) -> impl Iterator<Item = (u8, super::Fixed, Option<i64>)> + '_ {
        self.nums[self.bonus_start as usize..]
            .chunks_exact(3)
            .map(|b| {
                (
                    b[0] as u8,
                    super::Fixed::from_units(b[1]),
                    (b[2] != i64::MIN).then_some(b[2]),
                )
            })
    }
}

/// Builds an activity's digest from the same views the projections use.
pub fn digest(a: &Activity) -> Digest {
    let d = Derived {
        activity: Some(a),
        rfm: None,
        now: Timestamp::UNIX_EPOCH,
        window_days: 0,
    };
    let mut text = String::with_capacity(1024);
    let head = d.stats().head;
    if head.receipts_count > 0 {
        text.push_str(&serde_json::to_string(&head).expect("stats serialize"));
        text.pop(); // the closing brace: the day counts follow
    }
    let e0 = text.len() as u32;
    let json = |v: &dyn erased::Json| v.to_json();
    text.push_str(",\"favorite_stores\":");
    text.push_str(&json(&d.favorite_stores()));
    text.push_str(",\"abandoned_cart\":");
    text.push_str(&json(&d.abandoned_cart()));
    let e1 = text.len() as u32;
    text.push_str(",\"mailings\":");
    text.push_str(&json(&d.mailings()));
    text.push_str(",\"promo_codes\":");
    text.push_str(&json(&d.promo_codes()));
    text.push_str(",\"polls\":");
    text.push_str(&json(&d.polls()));
    let e2 = text.len() as u32;
    let mut nums = Vec::new();
    let mut categories = 0;
    for (name, c) in &a.summary.categories {
        let Some(last) = c.views.last() else { continue };
        text.push_str(name);
        let name_end = text.len() as i64;
        text.push_str(&at(*last).to_string());
        nums.extend_from_slice(&[name_end, text.len() as i64, c.views.len() as i64]);
        nums.extend_from_slice(&c.views);
        categories += 1;
    }
    let bonus_start = nums.len() as u32;
    for b in a.summary.bonuses.values() {
        nums.extend_from_slice(&[
            i64::from(b.status),
            b.amount.units(),
            b.expires.unwrap_or(i64::MIN),
        ]);
    }
    Digest {
        text: text.into(),
        ends: [e0, e1, e2],
        first_day: a.summary.first.map_or(0, day_of),
        last_day: a.summary.last.map_or(0, |(t, _)| day_of(t)),
        nums: nums.into(),
        categories,
        bonus_start,
    }
}

/// Serializing the views above to text without naming each type.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).expect("views serialize")
        }
    }
}

/// A lazily rendered [`Digest`]: filled by the first reader after a change (under the
/// shard's read lock; concurrent first readers wait for one), emptied by the actor on
/// every change. Not part of the activity's value: clones start empty, comparisons
/// ignore it, snapshots leave it out.
#[derive(Debug, Default)]
pub struct Rendered(std::sync::OnceLock<Digest>);

impl Rendered {
    /// The digest, rendered now if it is not yet.
    pub fn get(&self, a: &Activity) -> &Digest {
        self.0.get_or_init(|| digest(a))
    }

    /// Starts loading the digest's text and numbers into the cache, if it is rendered:
    /// a read finds the activity, then writes the profile's own members (a microsecond
    /// of work) before it copies the digest, so the digest's misses, a third of a cold
    /// read's time, overlap that work instead of following it.
    pub fn prefetch(&self) {
        if let Some(d) = self.0.get() {
            prefetch_lines(d.text.as_bytes());
            prefetch_lines(&d.nums);
        }
    }
}

/// The most cache lines a digest part is prefetched for (a typical digest's text is
/// about a kilobyte: 16 lines).
const PREFETCH_LINES: usize = 24;

/// Asks the CPU to load the first [`PREFETCH_LINES`] cache lines of `items`. A prefetch
/// is a hint: it reads nothing and cannot fault.
fn prefetch_lines<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in items
        .chunks((64 / std::mem::size_of::<T>()).max(1))
        .take(PREFETCH_LINES)
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that dereferences nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

impl Clone for Rendered {
    fn clone(&self) -> Self {
        Rendered::default()
    }
}

impl PartialEq for Rendered {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl bincode::Encode for Rendered {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        _: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        Ok(())
    }
}

impl<C> bincode::Decode<C> for Rendered {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        _: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Rendered::default())
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Rendered {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        _: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Rendered::default())
    }
}

impl Derived<'_> {
    /// Writes `"stats"` to `"polls"` of the whole document (from `,"stats":` on, without
    /// the leading comma's member name: the caller wrote `,"stats":`), with
    /// `days_since_registration` given. Requires an activity.
    pub fn write_members(&self, out: &mut Vec<u8>, days_since_registration: i64) {
        use std::io::Write;
        let a = self.activity.expect("an activity to write");
        let d = a.rendered.get(a);
        let today = i64::from(day_of(self.now.as_microsecond()));
        let [e0, e1, e2] = d.ends.map(|e| e as usize);
        if e0 > 0 {
            out.extend_from_slice(&d.text.as_bytes()[..e0]);
            let _ = write!(
                out,
                ",\"days_since_first_receipt\":{},\"days_since_last_receipt\":{},\"days_since_registration\":{}}}",
                today - i64::from(d.first_day),
                today - i64::from(d.last_day),
                days_since_registration
            );
        } else {
            out.extend_from_slice(STATS_EMPTY_PREFIX.as_bytes());
            let _ = write!(out, "{days_since_registration}}}");
        }
        out.extend_from_slice(b",\"rfm\":");
        match self.rfm() {
            Some(r) => {
                let _ = write!(
                    out,
                    "{{\"r\":{},\"f\":{},\"m\":{},\"segment\":\"{}\"}}",
                    r.r, r.f, r.m, r.segment
                );
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"interests\":[");
        let rows = d.interests(self.since());
        for (k, (n, name, last, _)) in rows.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"category\":");
            serde_json::to_writer(&mut *out, name).expect("a string serializes");
            let _ = write!(out, ",\"views\":{n},\"last_view_at\":\"{last}\"}}");
        }
        out.push(b']');
        out.extend_from_slice(&d.text.as_bytes()[e0..e1]);
        out.extend_from_slice(b",\"bonuses\":");
        let b = super::state::bonus_totals(d.bonuses(), self.now.as_microsecond());
        serde_json::to_writer(&mut *out, &Bonuses::from(b)).expect("bonuses serialize");
        out.extend_from_slice(&d.text.as_bytes()[e1..e2]);
    }
}

/// `stats` of a profile without completed receipts, up to the one value that changes
/// by the day.
pub const STATS_EMPTY_PREFIX: &str = "{\"receipts_count\":0,\"receipts_total\":0.0,\"last_receipt_total\":null,\
\"average_receipt\":null,\"average_items\":null,\"first_receipt_at\":null,\"last_receipt_at\":null,\
\"days_since_first_receipt\":null,\"days_since_last_receipt\":null,\"days_since_registration\":";
