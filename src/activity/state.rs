//! One profile's activity: its timeline and the aggregates derived values are read from.
//!
//! Every aggregate is kept incrementally as events are applied, never by rescanning the
//! timeline, so trimming old events (retention) changes no derived value. Each one is
//! built to come out the same whatever order events arrive in: sums are exact
//! ([`Fixed`]), "latest" is decided by event time with a fixed tie-break, and sets of
//! times are merged by maximum. The types derive bincode's traits directly because they
//! are plain data made for this purpose; field and variant order is part of the
//! snapshot format.

use std::collections::VecDeque;

use bincode::{Decode, Encode};

use super::event::{BonusStatus, Event, Kind, Payload, ReceiptStatus};
use super::money::Fixed;
use super::rank::RfmKeys;
use super::small_map::SmallMap;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;
/// How far back category views are kept: the longest interest window (3650 days).
const VIEW_HORIZON_US: i64 = 3650 * DAY_US;
/// Views kept per category (the newest).
pub const MAX_VIEWS: usize = 1000;
/// Mailings, promo codes and polls kept on the profile (the newest by time).
pub const KEEP_RECENT: usize = 20;

/// One event in a timeline.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Stored {
    /// When, in microseconds since the epoch.
    pub time: i64,
    /// Arrival order: the LSN of the log record and the event's place in it.
    pub seq: u64,
    /// [`Kind`] as a byte.
    pub kind: u8,
    /// A custom type's name.
    pub custom: Option<Box<str>>,
    /// The payload, as canonical JSON.
    pub data: Box<str>,
}

impl Stored {
    /// The event's kind.
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.kind).unwrap_or(Kind::Custom)
    }

    /// The type name as posted.
    pub fn type_name(&self) -> &str {
        self.custom.as_deref().unwrap_or(self.kind().name())
    }
}

/// A receipt as the aggregates know it.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ReceiptRec {
    /// When.
    pub time: i64,
    /// Its total.
    pub total: Fixed,
    /// The sum of its item quantities.
    pub items: Fixed,
    /// [`ReceiptStatus`] as a byte.
    pub status: u8,
    /// The store's id.
    pub store: Option<Box<str>>,
    /// A hash of the copy's payload: the last tie-break between two copies.
    pub digest: u64,
}

impl ReceiptRec {
    fn counted(&self) -> bool {
        self.status == ReceiptStatus::Completed as u8
    }

    // Which of two copies of one receipt wins: the later, then the more final status,
    // then the larger total, then the payload's hash. A total order (but for equal
    // payloads, which are the same copy), so arrival order does not matter.
    fn rank(&self) -> (i64, u8, Fixed, u64) {
        (self.time, self.status, self.total, self.digest)
    }
}

/// A store's receipts (kept at zero too, for its name).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct StoreRec {
    /// The name, from the latest receipt that gave one.
    pub name: Option<Box<str>>,
    /// That receipt's time.
    pub name_time: i64,
    /// Completed receipts made there.
    pub receipts: u32,
}

/// Views of one category not yet followed by a purchase in it.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct CategoryRec {
    /// View times, ascending, all after `bought`.
    pub views: Vec<i64>,
    /// The latest receipt containing the category (`i64::MIN`: never).
    pub bought: i64,
}

/// A cart add as kept: the latest by time (then by its other members) wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub struct CartLine {
    /// When.
    pub time: i64,
    /// Product name.
    pub name: Option<Box<str>>,
    /// Unit price.
    pub price: Option<Fixed>,
    /// How many.
    pub quantity: Fixed,
}

/// One sku's cart history.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct CartRec {
    /// The latest add.
    pub added: Option<CartLine>,
    /// The latest removal (`i64::MIN`: never).
    pub removed: i64,
    /// The latest receipt containing it (`i64::MIN`: never).
    pub bought: i64,
}

/// One loyalty bonus's latest state.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct BonusRec {
    /// When it was last changed.
    pub time: i64,
    /// [`BonusStatus`] as a byte.
    pub status: u8,
    /// Its amount.
    pub amount: Fixed,
    /// When it is withdrawn.
    pub expires: Option<i64>,
}

/// A mailing, promo code or poll kept on the profile.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Recent {
    /// Its id (mailing id, code, poll id): a later event with the same one replaces it.
    pub key: Box<str>,
    /// When.
    pub time: i64,
    /// The payload, as canonical JSON.
    pub data: Box<str>,
}

/// Everything derived values are read from.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct Summary {
    /// Every receipt ever applied, by a hash of its id.
    pub receipts: SmallMap<u64, ReceiptRec>,
    /// Completed receipts.
    pub count: u32,
    /// Their total.
    pub total: Fixed,
    /// Their item quantities.
    pub items: Fixed,
    /// The first completed receipt's time.
    pub first: Option<i64>,
    /// The last completed receipt: time and id hash.
    pub last: Option<(i64, u64)>,
    /// Its total.
    pub last_total: Fixed,
    /// Stores by id.
    pub stores: SmallMap<Box<str>, StoreRec>,
    /// Category views and purchases, by category.
    pub categories: SmallMap<Box<str>, CategoryRec>,
    /// Cart history by sku.
    pub cart: SmallMap<Box<str>, CartRec>,
    /// Bonuses by id (`#<seq>` for bonuses sent without one).
    pub bonuses: SmallMap<Box<str>, BonusRec>,
    /// The newest mailings.
    pub mailings: Vec<Recent>,
    /// The newest promo codes.
    pub promo_codes: Vec<Recent>,
    /// The newest polls.
    pub polls: Vec<Recent>,
}

/// One profile's activity.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct Activity {
    /// The LSN of the last log record applied: replaying a record at or below it again
    /// (a snapshot taken while writes went on) changes nothing.
    pub lsn: u64,
    /// Kept events, ascending by (time, seq): new events mostly go at the back and
    /// trimmed ones leave from the front, which a deque does without moving the rest.
    pub timeline: VecDeque<Stored>,
    /// The aggregates.
    pub summary: Summary,
    /// The digest of the above for reads, emptied on every change.
    pub rendered: super::view::Rendered,
}

/// A stable 64-bit hash of a receipt id or payload (FNV-1a: the same in every process,
/// which a hash kept in snapshots must be).
fn id_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stable 64-bit hash of a payload, eight bytes a step (the FNV-1a scheme on words
/// rather than bytes: a receipt's few hundred bytes in ~50 multiplications).
fn payload_hash(s: &str) -> u64 {
    let mut chunks = s.as_bytes().chunks_exact(8);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    for b in chunks.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The UTC day of an instant in microseconds.
pub fn day_of(time: i64) -> i32 {
    time.div_euclid(DAY_US) as i32
}

impl Activity {
    /// Applies the events of the log record `lsn` (`seq` of each is `lsn << 20 | i`),
    /// keeping at most `max_events` in the timeline. A record at or below the last one
    /// applied changes nothing.
    pub fn apply(&mut self, lsn: u64, events: &[Event], max_events: usize) {
        self.apply_owned(lsn, events.to_vec(), max_events);
    }

    /// [`Activity::apply`], keeping the events' payloads without copying them.
    pub fn apply_owned(&mut self, lsn: u64, events: Vec<Event>, max_events: usize) {
        if lsn <= self.lsn {
            return;
        }
        self.lsn = lsn;
        self.rendered = super::view::Rendered::default();
        for (i, e) in events.into_iter().enumerate() {
            let seq = (lsn << 20) | i as u64;
            self.summary.apply(seq, &e);
            let stored = Stored {
                time: e.time,
                seq,
                kind: e.kind as u8,
                custom: e.custom,
                data: e.data,
            };
            let at = self
                .timeline
                .partition_point(|s| (s.time, s.seq) < (stored.time, stored.seq));
            self.timeline.insert(at, stored);
        }
        if self.timeline.len() > max_events {
            let extra = self.timeline.len() - max_events;
            self.timeline.drain(..extra);
            self.timeline.shrink_to(max_events * 2);
        }
    }

    /// Folds another profile's activity into this one (an identity merge): every
    /// aggregate as if its events had been applied here, the timelines interleaved by
    /// time with the oldest trimmed to `max_events`. Events trimmed from either before
    /// still count, as they did.
    pub fn absorb(&mut self, other: Activity, max_events: usize) {
        self.lsn = self.lsn.max(other.lsn);
        self.rendered = super::view::Rendered::default();
        self.summary.absorb(other.summary);
        let mut all: Vec<Stored> = std::mem::take(&mut self.timeline).into();
        all.extend(other.timeline);
        all.sort_by_key(|e| (e.time, e.seq));
        all.dedup_by_key(|e| (e.time, e.seq));
        let extra = all.len().saturating_sub(max_events);
        self.timeline = all.into_iter().skip(extra).collect();
    }

    /// What RFM ranks this profile by; `None` without a completed receipt.
    pub fn rfm_keys(&self) -> Option<RfmKeys> {
        let s = &self.summary;
        let (last, _) = s.last?;
        (s.count > 0).then(|| RfmKeys {
            last_day: day_of(last),
            count: s.count,
            total: s.total,
        })
    }
}

fn fixed(x: f64) -> Fixed {
    Fixed::from_f64(x).unwrap_or(Fixed::ZERO)
}

fn boxed(s: &str) -> Box<str> {
    s.into()
}

impl Summary {
    fn apply(&mut self, seq: u64, e: &Event) {
        let t = e.time;
        match &e.payload {
            Payload::Receipt(r) => {
                let rec = ReceiptRec {
                    time: t,
                    total: fixed(r.total),
                    items: r
                        .items
                        .iter()
                        .fold(Fixed::ZERO, |a, i| a.saturating_add(fixed(i.quantity))),
                    status: r.status as u8,
                    store: r.store.as_ref().map(|s| boxed(&s.id)),
                    digest: payload_hash(&e.data),
                };
                self.receipt(id_hash(&r.receipt_id), rec);
                // The name from the latest copy that gives one, counted or not, so
                // that it does not depend on which copies counted when.
                if let Some(store) = &r.store
                    && let Some(name) = &store.name
                {
                    let s = self.store_entry(&store.id);
                    if (t, Some(name.as_str())) > (s.name_time, s.name.as_deref()) {
                        s.name = Some(boxed(name));
                        s.name_time = t;
                    }
                }
                // Any copy of a receipt is evidence of the purchase, whatever its status:
                // a union of times is order-independent where "the winning copy's items"
                // would not be.
                for item in &r.items {
                    if let Some(c) = &item.category {
                        self.bought_category(c, t);
                    }
                    let cart = self.cart_entry(&item.sku);
                    cart.bought = cart.bought.max(t);
                }
            }
            Payload::ProductView(v) => {
                if let Some(c) = &v.category {
                    self.view(c, t);
                }
            }
            Payload::CategoryView(v) => self.view(&v.category, t),
            Payload::CartAdd(a) => {
                let line = CartLine {
                    time: t,
                    name: a.name.as_deref().map(boxed),
                    price: a.price.map(fixed),
                    quantity: fixed(a.quantity),
                };
                let cart = self.cart_entry(&a.sku);
                if cart.added.as_ref().is_none_or(|old| *old < line) {
                    cart.added = Some(line);
                }
            }
            Payload::CartRemove(r) => {
                let cart = self.cart_entry(&r.sku);
                cart.removed = cart.removed.max(t);
            }
            Payload::Mailing(m) => keep_recent(&mut self.mailings, &m.mailing_id, t, &e.data),
            Payload::PromoCode(p) => keep_recent(&mut self.promo_codes, &p.code, t, &e.data),
            Payload::Poll(p) => keep_recent(&mut self.polls, &p.poll_id, t, &e.data),
            Payload::Bonus(b) => {
                let key: Box<str> = match &b.bonus_id {
                    Some(id) => boxed(id),
                    None => format!("#{seq}").into(),
                };
                let rec = BonusRec {
                    time: t,
                    status: b.status as u8,
                    amount: fixed(b.amount),
                    expires: b.expires_at.map(|x| x.as_microsecond()),
                };
                let rank = |r: &BonusRec| (r.time, r.status, r.amount, r.expires);
                match self.bonuses.get_mut(&key) {
                    Some(old) if rank(old) >= rank(&rec) => {}
                    Some(old) => *old = rec,
                    None => {
                        self.bonuses.insert(key, rec);
                    }
                }
            }
            Payload::PageView(_)
            | Payload::CallCenter(_)
            | Payload::TagSet(_)
            | Payload::Subscription(_)
            | Payload::Custom => {}
        }
    }

    /// Folds another summary in: each aggregate through the same rule that applying
    /// the other's events here would have used, so the result does not depend on which
    /// profile absorbs which.
    fn absorb(&mut self, other: Summary) {
        for (id, rec) in other.receipts {
            self.receipt(id, rec);
        }
        for (id, s) in other.stores {
            let mine = self.store_entry(&id);
            if (s.name_time, s.name.as_deref()) > (mine.name_time, mine.name.as_deref()) {
                mine.name = s.name;
                mine.name_time = s.name_time;
            }
        }
        for (category, c) in other.categories {
            if c.bought != i64::MIN {
                self.bought_category(&category, c.bought);
            }
            for t in c.views {
                self.view(&category, t);
            }
        }
        for (sku, c) in other.cart {
            let mine = self.cart_entry(&sku);
            if c.added > mine.added {
                mine.added = c.added;
            }
            mine.removed = mine.removed.max(c.removed);
            mine.bought = mine.bought.max(c.bought);
        }
        let rank = |r: &BonusRec| (r.time, r.status, r.amount, r.expires);
        for (key, b) in other.bonuses {
            match self.bonuses.get_mut(&key) {
                Some(old) if rank(old) >= rank(&b) => {}
                Some(old) => *old = b,
                None => {
                    self.bonuses.insert(key, b);
                }
            }
        }
        for (mine, theirs) in [
            (&mut self.mailings, other.mailings),
            (&mut self.promo_codes, other.promo_codes),
            (&mut self.polls, other.polls),
        ] {
            for r in theirs {
                keep_recent(mine, &r.key, r.time, &r.data);
            }
        }
    }

    fn cart_entry(&mut self, sku: &str) -> &mut CartRec {
        // Looked up before inserting: `entry` would allocate the key every time.
        if !self.cart.contains_key(sku) {
            let fresh = CartRec {
                added: None,
                removed: i64::MIN,
                bought: i64::MIN,
            };
            self.cart.insert(boxed(sku), fresh);
        }
        self.cart.get_mut(sku).expect("inserted above")
    }

    fn category_entry(&mut self, category: &str) -> &mut CategoryRec {
        if !self.categories.contains_key(category) {
            let fresh = CategoryRec {
                views: Vec::new(),
                bought: i64::MIN,
            };
            self.categories.insert(boxed(category), fresh);
        }
        self.categories.get_mut(category).expect("inserted above")
    }

    fn view(&mut self, category: &str, t: i64) {
        let c = self.category_entry(category);
        if t <= c.bought {
            return; // a purchase after it satisfied it already
        }
        let at = c.views.partition_point(|v| *v <= t);
        c.views.insert(at, t);
        let newest = *c.views.last().expect("just inserted");
        let old = c.views.partition_point(|v| *v < newest - VIEW_HORIZON_US);
        let over = c.views.len().saturating_sub(MAX_VIEWS);
        c.views.drain(..old.max(over));
    }

    fn bought_category(&mut self, category: &str, t: i64) {
        let c = self.category_entry(category);
        c.bought = c.bought.max(t);
        let satisfied = c.views.partition_point(|v| *v <= c.bought);
        c.views.drain(..satisfied);
    }

    fn receipt(&mut self, id: u64, rec: ReceiptRec) {
        if let Some(old) = self.receipts.get(&id) {
            if old.rank() >= rec.rank() {
                return; // the same receipt again, or an older copy of it
            }
            let old = old.clone();
            if old.counted() {
                self.uncount(id, &old);
            }
        }
        if rec.counted() {
            self.count(id, &rec);
        }
        self.receipts.insert(id, rec);
    }

    fn count(&mut self, id: u64, r: &ReceiptRec) {
        self.count += 1;
        self.total = self.total.saturating_add(r.total);
        self.items = self.items.saturating_add(r.items);
        self.first = Some(self.first.map_or(r.time, |f| f.min(r.time)));
        if self.last.is_none_or(|l| l < (r.time, id)) {
            self.last = Some((r.time, id));
            self.last_total = r.total;
        }
        if let Some(store) = &r.store {
            self.store_entry(store).receipts += 1;
        }
    }

    fn store_entry(&mut self, id: &str) -> &mut StoreRec {
        if !self.stores.contains_key(id) {
            let fresh = StoreRec {
                name: None,
                name_time: i64::MIN,
                receipts: 0,
            };
            self.stores.insert(boxed(id), fresh);
        }
        self.stores.get_mut(id).expect("inserted above")
    }

    fn uncount(&mut self, id: u64, r: &ReceiptRec) {
        self.count -= 1;
        self.total = self.total.saturating_sub(r.total);
        self.items = self.items.saturating_sub(r.items);
        if let Some(store) = &r.store
            && let Some(s) = self.stores.get_mut(store)
        {
            s.receipts -= 1;
        }
        if self.first == Some(r.time) || self.last == Some((r.time, id)) {
            // Rare (a receipt returned or replaced): find the ends again.
            let counted = self
                .receipts
                .iter()
                .filter(|(k, x)| **k != id && x.counted());
            self.first = counted.clone().map(|(_, x)| x.time).min();
            self.last = counted.clone().map(|(k, x)| (x.time, *k)).max();
            self.last_total = self
                .last
                .and_then(|(_, k)| self.receipts.get(&k))
                .map_or(Fixed::ZERO, |x| x.total);
        }
    }
}

fn keep_recent(list: &mut Vec<Recent>, key: &str, time: i64, data: &str) {
    if let Some(old) = list.iter_mut().find(|r| &*r.key == key) {
        if (old.time, &*old.data) < (time, data) {
            old.time = time;
            old.data = data.into();
        }
    } else {
        list.push(Recent {
            key: key.into(),
            time,
            data: data.into(),
        });
    }
    list.sort_by(|a, b| (b.time, &b.key).cmp(&(a.time, &a.key)));
    list.truncate(KEEP_RECENT);
}

/// Bonus totals at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BonusTotals {
    /// Spendable now.
    pub active: Fixed,
    /// Granted, not yet spendable.
    pub pending_activation: Fixed,
    /// About to be withdrawn.
    pub pending_deactivation: Fixed,
    /// The nearest expiry of a spendable bonus, and how much expires then.
    pub next_deactivation: Option<(i64, Fixed)>,
}

/// Bonus totals at `now` (microseconds) of bonuses given as status, amount and expiry:
/// an expired bonus counts nowhere.
pub fn bonus_totals(
    bonuses: impl Iterator<Item = (u8, Fixed, Option<i64>)>,
    now: i64,
) -> BonusTotals {
    let mut t = BonusTotals::default();
    for (status, amount, expires) in bonuses {
        let live = expires.is_none_or(|x| x > now);
        let spendable = match status {
            s if s == BonusStatus::Active as u8 && live => {
                t.active = t.active.saturating_add(amount);
                true
            }
            s if s == BonusStatus::PendingActivation as u8 => {
                t.pending_activation = t.pending_activation.saturating_add(amount);
                false
            }
            s if s == BonusStatus::PendingDeactivation as u8 && live => {
                t.pending_deactivation = t.pending_deactivation.saturating_add(amount);
                true
            }
            _ => false,
        };
        if spendable && let Some(x) = expires {
            t.next_deactivation = match t.next_deactivation {
                Some((at, sum)) if at == x => Some((at, sum.saturating_add(amount))),
                Some((at, sum)) if at < x => Some((at, sum)),
                _ => Some((x, amount)),
            };
        }
    }
    t
}

impl Summary {
    /// Bonus totals at `now` (microseconds): an expired bonus counts nowhere.
    pub fn bonuses_at(&self, now: i64) -> BonusTotals {
        bonus_totals(
            self.bonuses
                .values()
                .map(|b| (b.status, b.amount, b.expires)),
            now,
        )
    }

    /// Stores by completed receipts, most first, at most `n`.
    pub fn favorite_stores(&self, n: usize) -> Vec<(&str, Option<&str>, u32)> {
        let mut out: Vec<_> = self
            .stores
            .iter()
            .filter(|(_, s)| s.receipts > 0)
            .map(|(id, s)| (&**id, s.name.as_deref(), s.receipts))
            .collect();
        out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        out.truncate(n);
        out
    }

    /// Skus added to the cart and neither removed nor bought since, newest first.
    pub fn abandoned_cart(&self) -> Vec<(&str, &CartRec)> {
        let mut out: Vec<(&str, &CartRec)> = self
            .cart
            .iter()
            .filter(|(_, c)| {
                c.added
                    .as_ref()
                    .is_some_and(|a| a.time > c.removed.max(c.bought))
            })
            .map(|(s, c)| (&**s, c))
            .collect();
        out.sort_by_key(|(s, c)| (std::cmp::Reverse(c.added.as_ref().map(|a| a.time)), *s));
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::activity::event::build;

    const H: i64 = 3_600_000_000;

    fn ev(kind: &str, hour: i64, data: serde_json::Value) -> Event {
        build(kind, 1_700_000_000_000_000 + hour * H, Some(data))
            .unwrap()
            .0
    }

    fn receipt(id: &str, hour: i64, total: f64, status: &str) -> Event {
        ev(
            "receipt",
            hour,
            json!({"receipt_id":id,"total":total,"status":status,
            "store":{"id":"s1","name":"Downtown"},
            "items":[{"sku":format!("sku-{id}"),"category":"monitors","price":total,"quantity":1}]}),
        )
    }

    fn sample() -> Vec<Event> {
        let mut corrected = receipt("r1", 1, 10.0, "completed");
        if let Payload::Receipt(r) = &mut corrected.payload {
            r.store = None; // a copy that ties on time, status and total, not on payload
        }
        corrected.data = canonical_of(&corrected);
        vec![
            corrected,
            receipt("r1", 1, 10.0, "completed"),
            receipt("r2", 5, 30.5, "completed"),
            receipt("r2", 5, 30.5, "completed"),
            receipt("r3", 9, 7.25, "completed"),
            receipt("r3", 12, 7.25, "returned"),
            ev("category_view", 2, json!({"category":"monitors"})),
            ev("category_view", 20, json!({"category":"monitors"})),
            ev(
                "product_view",
                21,
                json!({"sku":"k1","category":"keyboards"}),
            ),
            ev("cart_add", 3, json!({"sku":"sku-r2","price":30.5})),
            ev("cart_add", 22, json!({"sku":"k1","price":15})),
            ev("cart_add", 23, json!({"sku":"m1","price":99})),
            ev("cart_remove", 24, json!({"sku":"m1"})),
            ev(
                "bonus",
                1,
                json!({"bonus_id":"b1","amount":100,"status":"active"}),
            ),
            ev(
                "bonus",
                4,
                json!({"bonus_id":"b1","amount":100,"status":"pending_deactivation",
                "expires_at":"2030-01-01T00:00:00Z"}),
            ),
            ev(
                "bonus",
                4,
                json!({"amount":30,"status":"pending_activation"}),
            ),
            ev(
                "mailing",
                6,
                json!({"mailing_id":"m1","channel":"email","control_group":true}),
            ),
            ev("promo_code", 7, json!({"code":"SPRING","reissued":true})),
        ]
    }

    fn apply_all(events: &[Event], per_record: usize, max: usize) -> Activity {
        let mut a = Activity::default();
        for (n, chunk) in events.chunks(per_record.max(1)).enumerate() {
            a.apply(n as u64 + 1, chunk, max);
        }
        a
    }

    #[test]
    fn aggregates_follow_the_events() {
        let a = apply_all(&sample(), 1, 1000);
        let s = &a.summary;
        // r2 once; r3 returned: r1 and r2 count.
        assert_eq!(s.count, 2);
        assert_eq!(s.total.to_f64(), 40.5);
        assert_eq!(s.last_total.to_f64(), 30.5);
        // The two copies of r1 tie but for their payloads; the hash picked the one
        // without a store (whichever it picks, it picks it in any order: see below).
        assert_eq!(s.favorite_stores(5), vec![("s1", Some("Downtown"), 1)]);
        // The monitors view at hour 2 was satisfied by r2 (hour 5) and r3; the one at 20 was not.
        let view = crate::activity::view::Derived {
            activity: Some(&a),
            rfm: None,
            now: jiff::Timestamp::from_microsecond(1_700_000_000_000_000 + 48 * H).unwrap(),
            window_days: 3650,
        };
        let interests = serde_json::to_value(view.interests()).unwrap();
        let names: Vec<(&str, u64)> = interests
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["category"].as_str().unwrap(),
                    i["views"].as_u64().unwrap(),
                )
            })
            .collect();
        // Tied at one view each: the later last view (keyboards, hour 21) first.
        assert_eq!(names, [("keyboards", 1), ("monitors", 1)]);
        // sku-r2 was bought after it was added; m1 was removed: k1 is left.
        let cart: Vec<&str> = s.abandoned_cart().iter().map(|c| c.0).collect();
        assert_eq!(cart, ["k1"]);
        let b = s.bonuses_at(1_700_000_000_000_000);
        assert_eq!(
            (
                b.active,
                b.pending_deactivation.to_f64(),
                b.pending_activation.to_f64()
            ),
            (Fixed::ZERO, 100.0, 30.0)
        );
        assert_eq!(b.next_deactivation.map(|x| x.1.to_f64()), Some(100.0));
        assert_eq!(s.mailings.len(), 1);
        assert_eq!(a.timeline.len(), sample().len());
        assert!(s.receipts.values().any(|r| r.store.is_none()));
    }

    #[test]
    fn replaying_a_record_changes_nothing_and_retention_keeps_aggregates() {
        let events = sample();
        let mut a = Activity::default();
        a.apply(1, &events, 5);
        let once = a.clone();
        a.apply(1, &events, 5);
        assert_eq!(a, once);
        assert_eq!(a.timeline.len(), 5);
        assert_eq!(
            a.summary,
            apply_all(&events, 1, 1000)
                .summary
                .clone_without_seq_keys(&a.summary)
        );
    }

    fn canonical_of(e: &Event) -> Box<str> {
        match &e.payload {
            Payload::Receipt(r) => serde_json::to_string(r).unwrap().into(),
            _ => unreachable!(),
        }
    }

    impl Summary {
        // Bonuses without an id are keyed by seq, which depends on how events were
        // grouped into records: their totals must match, and everything else exactly.
        fn clone_without_seq_keys(&self, like: &Summary) -> Summary {
            for now in [0, 1_700_000_000_000_000, i64::MAX] {
                assert_eq!(self.bonuses_at(now), like.bonuses_at(now));
            }
            let mut s = self.clone();
            s.bonuses = like.bonuses.clone();
            s
        }
    }

    proptest! {
        // Events in any order, in any grouping, give the same aggregates.
        #[test]
        fn order_does_not_change_derived_values(
            order in Just((0..sample().len()).collect::<Vec<_>>()).prop_shuffle(),
            per in 1usize..5,
        ) {
            let events = sample();
            let base = apply_all(&events, 1, 1000).summary;
            let shuffled: Vec<Event> = order.iter().map(|i| events[*i].clone()).collect();
            let other = apply_all(&shuffled, per, 1000).summary;
            prop_assert_eq!(other.clone_without_seq_keys(&base), base.clone());
        }

        // Two profiles' events split any way, then one absorbs the other: the same
        // aggregates as one profile that got them all, and every kept event once.
        #[test]
        fn absorbing_an_activity_is_applying_its_events(
            order in Just((0..sample().len()).collect::<Vec<_>>()).prop_shuffle(),
            cut in 0usize..20,
            keep in 3usize..40,
        ) {
            let events: Vec<Event> = order.iter().map(|i| sample()[*i].clone()).collect();
            let cut = cut.min(events.len());
            let base = apply_all(&events, 1, keep).summary;
            let mut left = apply_all(&events[..cut], 1, keep);
            // The other profile's records come later in the log.
            let mut right = Activity::default();
            for (n, e) in events[cut..].iter().enumerate() {
                right.apply(1000 + n as u64, std::slice::from_ref(e), keep);
            }
            let right_len = right.timeline.len();
            let left_len = left.timeline.len();
            left.absorb(right, keep);
            prop_assert_eq!(left.summary.clone_without_seq_keys(&base), base.clone());
            prop_assert_eq!(left.timeline.len(), (left_len + right_len).min(keep));
            prop_assert!(left.timeline.iter().zip(left.timeline.iter().skip(1))
                .all(|(a, b)| (a.time, a.seq) < (b.time, b.seq)));
        }
    }
}
