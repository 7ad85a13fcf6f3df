//! Order statistics for RFM: how many profiles have a strictly smaller key, in
//! O(log n), kept up to date on every receipt.
//!
//! Two structures, both written by hand because what we need is small and specific
//! (insert, remove, count-below, read under a shared lock) and the order-statistic
//! crates we looked at either lack multiset removal or box every node:
//! - [`Histogram`]: a Fenwick tree over a bounded integer domain, for keys with few
//!   distinct values (the day of the last receipt, the receipt count): a query or an
//!   update is ~20 steps in one array, whatever the number of profiles.
//! - [`RankSet`]: sorted blocks of at most `BLOCK` (512) keys with a Fenwick tree over the
//!   block sizes, for keys of any spread (receipt totals): a million keys in ~2,000
//!   contiguous arrays.

use super::money::Fixed;

/// Keys per block before it splits.
const BLOCK: usize = 512;

/// A sorted multiset answering "how many keys are below k".
#[derive(Debug, Clone, Default)]
pub struct RankSet<K> {
    blocks: Vec<Vec<K>>,
    // The largest key of each block, for finding a key's block by binary search.
    maxes: Vec<K>,
    // Fenwick tree (1-based) over block lengths.
    tree: Vec<usize>,
    len: usize,
}

impl<K: Ord + Copy> RankSet<K> {
    /// An empty set.
    pub fn new() -> Self {
        RankSet {
            blocks: Vec::new(),
            maxes: Vec::new(),
            tree: vec![0],
            len: 0,
        }
    }

    /// A set of these keys, built in one pass.
    pub fn from_keys(mut keys: Vec<K>) -> Self {
        keys.sort_unstable();
        let len = keys.len();
        let blocks: Vec<Vec<K>> = keys.chunks(BLOCK).map(<[K]>::to_vec).collect();
        let mut s = RankSet {
            maxes: blocks
                .iter()
                .map(|b| *b.last().expect("chunks are not empty"))
                .collect(),
            blocks,
            tree: Vec::new(),
            len,
        };
        s.rebuild();
        s
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many keys are strictly smaller than `k`.
    pub fn below(&self, k: K) -> usize {
        let b = self.maxes.partition_point(|m| *m < k);
        let before = self.prefix(b);
        match self.blocks.get(b) {
            Some(block) => before + block.partition_point(|x| *x < k),
            None => before,
        }
    }

    /// Adds a key.
    pub fn insert(&mut self, k: K) {
        self.len += 1;
        if self.blocks.is_empty() {
            self.blocks.push(vec![k]);
            self.maxes.push(k);
            self.rebuild();
            return;
        }
        let b = self
            .maxes
            .partition_point(|m| *m < k)
            .min(self.blocks.len() - 1);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|x| *x < k);
        block.insert(at, k);
        self.maxes[b] = *block.last().expect("not empty");
        if block.len() > 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            self.maxes[b] = *block.last().expect("not empty");
            self.maxes.insert(b + 1, *tail.last().expect("not empty"));
            self.blocks.insert(b + 1, tail);
            self.rebuild();
        } else {
            self.add(b, 1);
        }
    }

    /// Removes one copy of a key; false if it was not there.
    pub fn remove(&mut self, k: K) -> bool {
        let b = self.maxes.partition_point(|m| *m < k);
        let Some(block) = self.blocks.get_mut(b) else {
            return false;
        };
        let at = block.partition_point(|x| *x < k);
        if block.get(at) != Some(&k) {
            return false;
        }
        block.remove(at);
        self.len -= 1;
        if block.is_empty() {
            self.blocks.remove(b);
            self.maxes.remove(b);
            self.rebuild();
        } else {
            self.maxes[b] = *block.last().expect("not empty");
            self.add(b, usize::MAX); // wrapping -1
        }
        true
    }

    fn rebuild(&mut self) {
        let n = self.blocks.len();
        self.tree = vec![0; n + 1];
        for (i, b) in self.blocks.iter().enumerate() {
            self.tree[i + 1] += b.len();
            let j = (i + 1) + ((i + 1) & (i + 1).wrapping_neg());
            if j <= n {
                self.tree[j] += self.tree[i + 1];
            }
        }
    }

    fn add(&mut self, block: usize, delta: usize) {
        let mut i = block + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(delta);
            i += i & i.wrapping_neg();
        }
    }

    // Keys in blocks before `block`.
    fn prefix(&self, block: usize) -> usize {
        let mut i = block;
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

/// Counts of integer keys in `0..size` (larger keys count as `size - 1`), answering
/// "how many are below k" with a Fenwick tree.
#[derive(Debug, Clone)]
pub struct Histogram {
    // 1-based Fenwick tree over `size` slots.
    tree: Vec<u32>,
    len: usize,
}

impl Histogram {
    /// An empty histogram over `0..size`.
    pub fn new(size: usize) -> Self {
        Histogram {
            tree: vec![0; size + 1],
            len: 0,
        }
    }

    /// A histogram of these keys, built in one pass.
    pub fn from_keys(size: usize, keys: impl Iterator<Item = usize>) -> Self {
        let mut h = Histogram::new(size);
        for k in keys {
            let slot = h.slot(k);
            h.tree[slot] += 1;
            h.len += 1;
        }
        for i in 1..=size {
            let j = i + (i & i.wrapping_neg());
            if j <= size {
                h.tree[j] += h.tree[i];
            }
        }
        h
    }

    fn slot(&self, k: usize) -> usize {
        k.min(self.tree.len() - 2) + 1
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many keys are strictly smaller than `k`.
    pub fn below(&self, k: usize) -> usize {
        let mut i = self.slot(k) - 1;
        let mut sum = 0usize;
        while i > 0 {
            sum += self.tree[i] as usize;
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// Adds a key.
    pub fn insert(&mut self, k: usize) {
        self.add(k, 1);
        self.len += 1;
    }

    /// Removes a key that was added.
    pub fn remove(&mut self, k: usize) {
        self.add(k, u32::MAX); // wrapping -1
        self.len -= 1;
    }

    fn add(&mut self, k: usize, delta: u32) {
        let mut i = self.slot(k);
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add(delta);
            i += i & i.wrapping_neg();
        }
    }
}

/// Days ranked: 0 (1970-01-01) to 65,535 (the year 2149); event times are refused
/// outside 1970 to tomorrow, so the bound is never reached.
const DAYS: usize = 1 << 16;
/// Receipt counts ranked exactly up to 1,048,575 a profile (more rank as that many).
const COUNTS: usize = 1 << 20;

fn day_slot(d: i32) -> usize {
    d.max(0) as usize
}

/// What RFM ranks a profile by: the UTC day of its last receipt, its receipt count and
/// its receipt total (completed receipts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmKeys {
    /// Days since the Unix epoch of the last receipt.
    pub last_day: i32,
    /// Receipts.
    pub count: u32,
    /// Their total.
    pub total: Fixed,
}

/// R, F and M scores and the segment they put the profile in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfm {
    /// Recency, 1 to 5.
    pub r: u8,
    /// Frequency, 1 to 5.
    pub f: u8,
    /// Monetary, 1 to 5.
    pub m: u8,
}

impl Rfm {
    /// The segment, from R and F (DESIGN.md's table).
    pub fn segment(self) -> &'static str {
        match (self.r, self.f) {
            (1..=2, 1..=2) => "hibernating",
            (1..=2, 3..=4) => "at_risk",
            (1..=2, _) => "cant_lose",
            (3, 1..=2) => "about_to_sleep",
            (3, 3) => "need_attention",
            (3..=4, 4..=5) => "loyal",
            (4, 1) => "promising",
            (5, 1) => "new",
            (4..=5, 2..=3) => "potential_loyalist",
            _ => "champions",
        }
    }
}

/// The three rankings of a database's profiles with at least one receipt.
#[derive(Debug, Clone)]
pub struct RfmIndex {
    days: Histogram,
    counts: Histogram,
    totals: RankSet<Fixed>,
}

impl Default for RfmIndex {
    fn default() -> Self {
        RfmIndex {
            days: Histogram::new(DAYS),
            counts: Histogram::new(COUNTS),
            totals: RankSet::new(),
        }
    }
}

impl RfmIndex {
    /// An index of these profiles' keys, built in one pass.
    pub fn from_keys(keys: &[RfmKeys]) -> Self {
        RfmIndex {
            days: Histogram::from_keys(DAYS, keys.iter().map(|k| day_slot(k.last_day))),
            counts: Histogram::from_keys(COUNTS, keys.iter().map(|k| k.count as usize)),
            totals: RankSet::from_keys(keys.iter().map(|k| k.total).collect()),
        }
    }

    /// Profiles ranked (those with at least one receipt).
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Whether no profile has a receipt.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Moves a profile from its old keys to its new ones (`None`: no receipt).
    pub fn update(&mut self, old: Option<RfmKeys>, new: Option<RfmKeys>) {
        if old == new {
            return;
        }
        // Only the rankings whose key moved are touched (a second receipt on the same
        // day leaves the day ranking alone).
        match (old, new) {
            (Some(o), Some(n)) => {
                if o.last_day != n.last_day {
                    self.days.remove(day_slot(o.last_day));
                    self.days.insert(day_slot(n.last_day));
                }
                if o.count != n.count {
                    self.counts.remove(o.count as usize);
                    self.counts.insert(n.count as usize);
                }
                if o.total != n.total {
                    self.totals.remove(o.total);
                    self.totals.insert(n.total);
                }
            }
            (Some(o), None) => {
                self.days.remove(day_slot(o.last_day));
                self.counts.remove(o.count as usize);
                self.totals.remove(o.total);
            }
            (None, Some(n)) => {
                self.days.insert(day_slot(n.last_day));
                self.counts.insert(n.count as usize);
                self.totals.insert(n.total);
            }
            (None, None) => {}
        }
    }

    /// The scores of a profile with these keys: `1 + floor(5 * L / N)` for each of the
    /// three rankings, L counting profiles strictly below.
    pub fn scores(&self, k: RfmKeys) -> Option<Rfm> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let score = |below: usize| (1 + (5 * below) / n).min(5) as u8;
        Some(Rfm {
            r: score(self.days.below(day_slot(k.last_day))),
            f: score(self.counts.below(k.count as usize)),
            m: score(self.totals.below(k.total)),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        // Model-based: a sorted Vec answers the same.
        #[test]
        fn rank_set_matches_a_sorted_vec(ops in proptest::collection::vec((any::<bool>(), 0u16..300), 1..3000)) {
            let mut set = RankSet::new();
            let mut model: Vec<u16> = Vec::new();
            for (add, k) in ops {
                if add {
                    set.insert(k);
                    let at = model.partition_point(|x| *x < k);
                    model.insert(at, k);
                } else {
                    let had = model.binary_search(&k).is_ok();
                    prop_assert_eq!(set.remove(k), had);
                    if had {
                        let at = model.partition_point(|x| *x < k);
                        model.remove(at);
                    }
                }
                prop_assert_eq!(set.len(), model.len());
            }
            for k in 0u16..=300 {
                prop_assert_eq!(set.below(k), model.partition_point(|x| *x < k));
            }
            let built = RankSet::from_keys(model.clone());
            for k in 0u16..=300 {
                prop_assert_eq!(built.below(k), set.below(k));
            }
        }
    }

    proptest! {
        #[test]
        fn histogram_matches_a_sorted_vec(ops in proptest::collection::vec((any::<bool>(), 0usize..80), 1..400)) {
            let mut h = Histogram::new(64);
            let mut model: Vec<usize> = Vec::new();
            for (add, k) in ops {
                let k = k.min(63); // what the histogram clamps to
                if add || !model.contains(&k) {
                    h.insert(k);
                    model.push(k);
                } else {
                    h.remove(k);
                    let at = model.iter().position(|x| *x == k).unwrap();
                    model.swap_remove(at);
                }
            }
            let built = Histogram::from_keys(64, model.iter().copied());
            for k in 0..=70 {
                let want = model.iter().filter(|x| **x < k.min(63)).count();
                prop_assert_eq!(h.below(k), want);
                prop_assert_eq!(built.below(k), want);
            }
            prop_assert_eq!(h.len(), model.len());
        }
    }

    #[test]
    fn every_score_pair_has_its_segment() {
        let seg = |r, f| Rfm { r, f, m: 1 }.segment();
        assert_eq!(seg(1, 1), "hibernating");
        assert_eq!(seg(2, 4), "at_risk");
        assert_eq!(seg(2, 5), "cant_lose");
        assert_eq!(seg(3, 2), "about_to_sleep");
        assert_eq!(seg(3, 3), "need_attention");
        assert_eq!(seg(3, 5), "loyal");
        assert_eq!(seg(4, 4), "loyal");
        assert_eq!(seg(4, 1), "promising");
        assert_eq!(seg(5, 1), "new");
        assert_eq!(seg(4, 3), "potential_loyalist");
        assert_eq!(seg(5, 2), "potential_loyalist");
        assert_eq!(seg(5, 5), "champions");
    }

    #[test]
    fn scores_follow_the_definition() {
        // Five profiles with counts 1..=5: L = 0..=4, N = 5, F = 1 + floor(5L/5) = L + 1.
        let keys: Vec<RfmKeys> = (1..=5)
            .map(|c| RfmKeys {
                last_day: 100,
                count: c,
                total: Fixed::from_f64(10.0).unwrap(),
            })
            .collect();
        let idx = RfmIndex::from_keys(&keys);
        for k in &keys {
            let s = idx.scores(*k).unwrap();
            assert_eq!(s.f as u32, k.count);
            // Ties share a score: nobody is strictly below on day or total.
            assert_eq!((s.r, s.m), (1, 1));
        }
    }
}
