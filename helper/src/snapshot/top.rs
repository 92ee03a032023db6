//! A bounded top-N counter: at most `cap` groups are tracked; when more arrive the smallest half
//! is folded into a counted remainder, so a flood of millions of distinct sources costs a fixed
//! amount of memory and the big talkers (the ones that matter) survive.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hash, Hasher},
};

use ctguard_protocol::{Group, StateMix, TopList};

/// A small multiply-rotate hasher (FxHash's): the keys are addresses and ports the kernel
/// reports, hashed millions of times per walk, where SipHash's DoS resistance buys nothing (the
/// map is capped and folded, so a skewed key set costs time, never memory).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Debug)]
pub struct TopTracker<K> {
    groups: FastMap<K, StateMix>,
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
            groups: FastMap::default(),
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
