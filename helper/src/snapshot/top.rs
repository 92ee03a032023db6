//! A bounded top-N counter: at most `cap` groups are tracked; when more arrive the smallest half
//! is folded into a counted remainder, so a flood of millions of distinct sources costs a fixed
//! amount of memory and the big talkers (the ones that matter) survive.

use std::{
    collections::HashMap,
    hash::{Hash, RandomState},
};

use ctguard_protocol::{Group, StateMix, TopList};

/// The maps a walk aggregates into. Their keys are addresses and ports that an attacker chooses
/// (a flood's sources can all lie in one /16, or be picked to collide), so the hash is seeded:
/// std's SipHash-1-3 with keys drawn at random for every map. The fixed multiply-rotate hash used
/// before (FxHash's) sent a /16's addresses to a handful of buckets, since their low bits are all
/// alike, and slowed every insert of a walk by hundreds of probes. SipHash costs a few
/// nanoseconds more per key than that, next to the microseconds a kernel entry takes to dump and
/// parse; `tests/bench.rs` (`aggregation_benchmark`) measures both key sets with both hashes.
pub type SeededMap<K, V> = HashMap<K, V, RandomState>;

#[derive(Debug)]
pub struct TopTracker<K> {
    groups: SeededMap<K, StateMix>,
    cap: usize,
    rest: StateMix,
    folded: u64,
}

pub fn add(into: &mut StateMix, other: &StateMix) {
    into.entries += other.entries;
    into.unreplied += other.unreplied;
    into.assured += other.assured;
    into.syn_sent += other.syn_sent;
    into.syn_recv += other.syn_recv;
    into.established += other.established;
    into.time_wait += other.time_wait;
    into.closing += other.closing;
    into.source_nat += other.source_nat;
}

impl<K: Hash + Eq + Clone + Ord> TopTracker<K> {
    pub fn new(cap: usize) -> Self {
        Self {
            groups: SeededMap::default(),
            cap: cap.max(2),
            rest: StateMix::default(),
            folded: 0,
        }
    }

    pub fn add(&mut self, key: K, mix: &StateMix) {
        if let Some(existing) = self.groups.get_mut(&key) {
            add(existing, mix);
            return;
        }
        if self.groups.len() >= self.cap {
            self.fold(self.cap / 2);
        }
        self.groups.insert(key, *mix);
    }

    /// Keeps the `keep` largest groups and folds the others into the remainder.
    fn fold(&mut self, keep: usize) {
        let mut all: Vec<(K, StateMix)> = self.groups.drain().collect();
        all.sort_unstable_by(|a, b| b.1.entries.cmp(&a.1.entries).then_with(|| a.0.cmp(&b.0)));
        for (_, mix) in all.drain(keep.min(all.len())..) {
            add(&mut self.rest, &mix);
            self.folded += 1;
        }
        self.groups.extend(all);
    }

    /// The `n` largest groups, biggest first (ties by key), and the rest.
    pub fn finish(mut self, n: usize) -> TopList<K> {
        let distinct = self.groups.len() as u64 + self.folded;
        let mut all: Vec<(K, StateMix)> = self.groups.drain().collect();
        all.sort_unstable_by(|a, b| b.1.entries.cmp(&a.1.entries).then_with(|| a.0.cmp(&b.0)));
        let mut rest = self.rest;
        for (_, mix) in all.iter().skip(n) {
            add(&mut rest, mix);
        }
        all.truncate(n);
        TopList {
            top: all
                .into_iter()
                .map(|(key, mix)| Group { key, mix })
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

    #[test]
    fn the_big_groups_survive_a_flood_of_small_ones_and_nothing_is_lost() {
        let mut top = TopTracker::new(64);
        for _ in 0..1_000 {
            top.add(1u32, &one());
        }
        for key in 100..10_100u32 {
            top.add(key, &one());
            if key % 10 == 0 {
                top.add(2, &one());
            }
        }
        let list = top.finish(2);
        assert_eq!(list.top[0].key, 1);
        assert_eq!(list.top[0].mix.entries, 1_000);
        assert_eq!(list.top[1].key, 2);
        assert_eq!(list.top[1].mix.entries, 1_000);
        let total: u64 = list.top.iter().map(|g| g.mix.entries).sum::<u64>() + list.rest.entries;
        assert_eq!(
            total,
            1_000 + 10_000 + 1_000,
            "every entry is counted somewhere"
        );
        assert_eq!(list.rest.unreplied, 10_000);
        assert!(list.distinct >= 10_002);
    }
}
