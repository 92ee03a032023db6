//! Groups that count their distinct sources: per destination and per (destination, service), so
//! a victim of thousands of sources with a few entries each (a distributed reflection, a spoofed
//! SYN flood) shows as one group, which no per-source list can. Each group carries a 256-byte
//! HyperLogLog sketch of its sources; at most `cap` groups are tracked and, when more arrive,
//! the smallest half is folded into a counted remainder (their sketches dropped), as in
//! [`super::top::TopTracker`], so memory stays bounded whatever the table holds.

use std::{
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
};

use ctguard_protocol::{
    StateMix,
    snapshot::{SourcedGroup, SourcedList},
};

use super::top::{self, SeededMap};

/// Registers per sketch: a standard error of 1.04 / √256 ≈ 6.5 %.
const REGISTERS: usize = 256;

/// A HyperLogLog sketch (Flajolet et al. 2007) with the small-range correction (linear counting
/// while registers are still empty), which keeps small counts nearly exact.
#[derive(Debug, Clone)]
struct Sketch(Box<[u8; REGISTERS]>);

impl Default for Sketch {
    fn default() -> Self {
        Self(Box::new([0; REGISTERS]))
    }
}

impl Sketch {
    fn insert(&mut self, hash: u64) {
        let register = (hash >> 56) as usize;
        // The rank of the first set bit in the other 56 bits (57 when none is set).
        let rank = ((hash << 8) | (1 << 7)).leading_zeros() as u8 + 1;
        let slot = &mut self.0[register];
        *slot = (*slot).max(rank);
    }

    fn estimate(&self) -> u32 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round().min(f64::from(u32::MAX)) as u32
    }
}

#[derive(Debug)]
struct Tracked {
    mix: StateMix,
    sources: Sketch,
}

/// A bounded top-N counter whose groups also estimate their distinct sources.
#[derive(Debug)]
pub struct SourcedTracker<K> {
    groups: SeededMap<K, Tracked>,
    cap: usize,
    rest: StateMix,
    folded: u64,
    /// Seeded per walk: the sources are the attacker's choice (spoofed, picked to crowd a few
    /// registers and look like few), so their hash must not be predictable.
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone + Ord> SourcedTracker<K> {
    pub fn new(cap: usize) -> Self {
        Self {
            groups: SeededMap::default(),
            cap: cap.max(2),
            rest: StateMix::default(),
            folded: 0,
            hasher: RandomState::new(),
        }
    }

    pub fn add(&mut self, key: K, source: IpAddr, mix: &StateMix) {
        let hash = self.hasher.hash_one(source);
        if let Some(existing) = self.groups.get_mut(&key) {
            top::add(&mut existing.mix, mix);
            existing.sources.insert(hash);
            return;
        }
        if self.groups.len() >= self.cap {
            self.fold(self.cap / 2);
        }
        let mut sources = Sketch::default();
        sources.insert(hash);
        self.groups.insert(key, Tracked { mix: *mix, sources });
    }

    fn sorted(&mut self) -> Vec<(K, Tracked)> {
        let mut all: Vec<(K, Tracked)> = self.groups.drain().collect();
        all.sort_unstable_by(|a, b| {
            b.1.mix
                .entries
                .cmp(&a.1.mix.entries)
                .then_with(|| a.0.cmp(&b.0))
        });
        all
    }

    fn fold(&mut self, keep: usize) {
        let mut all = self.sorted();
        for (_, tracked) in all.drain(keep.min(all.len())..) {
            top::add(&mut self.rest, &tracked.mix);
            self.folded += 1;
        }
        self.groups.extend(all);
    }

    /// The `n` largest groups, biggest first (ties by key), with their sources, and the rest.
    pub fn finish(mut self, n: usize) -> SourcedList<K> {
        let distinct = self.groups.len() as u64 + self.folded;
        let mut all = self.sorted();
        let mut rest = self.rest;
        for (_, tracked) in all.iter().skip(n) {
            top::add(&mut rest, &tracked.mix);
        }
        all.truncate(n);
        SourcedList {
            top: all
                .into_iter()
                .map(|(key, tracked)| SourcedGroup {
                    key,
                    mix: tracked.mix,
                    sources: tracked.sources.estimate(),
                })
                .collect(),
            rest,
            distinct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> StateMix {
        StateMix {
            entries: 1,
            unreplied: 1,
            ..StateMix::default()
        }
    }

    fn address(n: u32) -> IpAddr {
        IpAddr::from((u32::from_be_bytes([198, 18, 0, 0]) + n).to_be_bytes())
    }

    fn within(estimate: u32, actual: u32, percent: u32) -> bool {
        estimate.abs_diff(actual) * 100 <= actual * percent
    }

    #[test]
    fn distinct_sources_are_estimated_from_a_few_to_tens_of_thousands() {
        for actual in [1u32, 7, 100, 1_000, 3_100, 20_000, 100_000] {
            let mut tracker = SourcedTracker::new(8);
            // Each source a few entries: repeats must not count twice.
            for round in 0..3 {
                for n in 0..actual {
                    if round == 0 || n % 2 == 0 {
                        tracker.add(1u8, address(n), &one());
                    }
                }
            }
            let list = tracker.finish(1);
            let sources = list.top[0].sources;
            // A few are all but exact (a collision costs one); then about 5 % at one standard
            // error, so 25 % fails only a broken sketch, never an unlucky seed.
            let close = if actual <= 10 {
                sources.abs_diff(actual) <= 1
            } else {
                within(sources, actual, 25)
            };
            assert!(close, "{actual}: {sources}");
        }
    }

    #[test]
    fn a_victim_survives_a_crowd_of_small_groups_and_nothing_is_lost() {
        let mut tracker = SourcedTracker::new(64);
        for key in 0..10_000u32 {
            tracker.add(key + 1, address(key), &one());
            // The victim: one entry from each of 5,000 sources, interleaved with the crowd.
            if key % 2 == 0 {
                tracker.add(0, address(key), &one());
            }
        }
        let list = tracker.finish(3);
        assert_eq!(list.top[0].key, 0);
        assert_eq!(list.top[0].mix.entries, 5_000);
        assert!(within(list.top[0].sources, 5_000, 25), "{:?}", list.top[0]);
        let total: u64 = list.top.iter().map(|g| g.mix.entries).sum::<u64>() + list.rest.entries;
        assert_eq!(total, 15_000, "every entry is counted somewhere");
        assert!(list.distinct >= 10_001);
    }
}
