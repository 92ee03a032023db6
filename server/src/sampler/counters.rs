//! Counters that never go down, from the kernel's per-CPU statistics.
//!
//! Each CPU's counter is an `unsigned int`: it wraps at 2³², and the sum over CPUs that
//! `conntrack -S` users add up then falls by up to 2³². So increases are taken per CPU, modulo
//! 2³², and added to totals kept here. A fall is never read as a reset: counters restart from zero
//! only when the namespace is created or the host boots, which the reading's identity (namespace
//! inode, boot id) says; then the new counters' values are what they counted since.
//!
//! The totals start at zero when the server starts: what `/metrics` exports is the increase since
//! then, so a server restart is the one reset Prometheus sees, and from a small value (starting
//! at the kernel's sum would make `rate()` count that whole sum as new after a restart that
//! followed a wrap).

use std::collections::BTreeMap;

use ctguard_protocol::{
    ConntrackStats, ConntrackStatus,
    status::{CpuStats, TableIdentity},
};

/// The totals, and what the last reading said, to take the next reading's increase from.
#[derive(Debug, Default)]
pub struct CounterTracker {
    totals: ConntrackStats,
    /// The last reading's counters per CPU number; `None` before the first reading.
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    identity: Option<TableIdentity>,
    per_cpu: BTreeMap<u32, ConntrackStats>,
    /// For a helper that sent no per-CPU values: the sums.
    sums: ConntrackStats,
}

/// How a reading related to the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The first reading: the baseline, nothing counted.
    First,
    /// The same counters as before: their increase counted.
    Same,
    /// Another table (namespace or boot): its counters counted from zero.
    Reset,
}

impl CounterTracker {
    /// Adds what `status` counted since the last reading to the totals; returns them and how the
    /// reading related to the one before.
    pub fn observe(&mut self, status: &ConntrackStatus) -> (ConntrackStats, Continuity) {
        let per_cpu: BTreeMap<u32, ConntrackStats> = status
            .per_cpu
            .iter()
            .map(|&CpuStats { cpu, stats }| (cpu, stats))
            .collect();
        let continuity = match &self.last {
            None => Continuity::First,
            Some(last) if is_reset(last.identity.as_ref(), status.identity.as_ref()) => {
                tracing::info!(
                    before = ?last.identity,
                    now = ?status.identity,
                    "the conntrack counters restarted (another namespace or a reboot)"
                );
                // They counted from zero since the reset: their values are the increase.
                add(&mut self.totals, &status.stats, |_, now| now);
                Continuity::Reset
            }
            Some(last) => {
                if per_cpu.is_empty() {
                    // No per-CPU values to take a wrap from: never negative, a wrap lost.
                    add_from(
                        &mut self.totals,
                        &last.sums,
                        &status.stats,
                        |before, now| now.saturating_sub(before),
                    );
                } else {
                    for (cpu, now) in &per_cpu {
                        // A CPU not seen before (hotplug, another statistics source) is a
                        // baseline: what it counted before is not known to be recent.
                        if let Some(before) = last.per_cpu.get(cpu) {
                            add_from(&mut self.totals, before, now, increase_u32);
                        }
                    }
                }
                Continuity::Same
            }
        };
        self.last = Some(Last {
            identity: status.identity.clone(),
            per_cpu,
            sums: status.stats,
        });
        (self.totals, continuity)
    }
}

/// Whether the counters restarted between two readings: only when both name their table and
/// the names differ. A reading that cannot say (an older helper, an unreadable file) is taken
/// as the same table: its falls are then wraps, which is what a fall of a live counter is.
fn is_reset(before: Option<&TableIdentity>, now: Option<&TableIdentity>) -> bool {
    matches!((before, now), (Some(before), Some(now)) if before != now)
}

/// One 32-bit counter's increase from `before` to `now`: modulo 2³², so a wrap of the kernel's
/// `unsigned int` is a small increase, never a fall. Both are kernel values below 2³².
pub fn increase_u32(before: u64, now: u64) -> u64 {
    let truncate = |value: u64| (value & u64::from(u32::MAX)) as u32;
    u64::from(truncate(now).wrapping_sub(truncate(before)))
}

/// `totals += step(0, now)` per counter (the increase of counters that started from zero).
fn add(totals: &mut ConntrackStats, now: &ConntrackStats, step: impl Fn(u64, u64) -> u64) {
    add_from(totals, &ConntrackStats::default(), now, step);
}

/// `totals += step(before, now)` per counter. A new counter must be added here and in
/// [`values`] alike.
fn add_from(
    totals: &mut ConntrackStats,
    before: &ConntrackStats,
    now: &ConntrackStats,
    step: impl Fn(u64, u64) -> u64,
) {
    let (before, now) = (values(before), values(now));
    for (index, total) in [
        &mut totals.found,
        &mut totals.invalid,
        &mut totals.insert,
        &mut totals.insert_failed,
        &mut totals.drop,
        &mut totals.early_drop,
        &mut totals.search_restart,
        &mut totals.error,
        &mut totals.clash_resolve,
        &mut totals.chaintoolong,
    ]
    .into_iter()
    .enumerate()
    {
        *total = total.saturating_add(step(before[index], now[index]));
    }
}

fn values(stats: &ConntrackStats) -> [u64; 10] {
    [
        stats.found,
        stats.invalid,
        stats.insert,
        stats.insert_failed,
        stats.drop,
        stats.early_drop,
        stats.search_restart,
        stats.error,
        stats.clash_resolve,
        stats.chaintoolong,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: u64 = u32::MAX as u64;

    fn identity(netns_inode: u64, boot_id: &str) -> Option<TableIdentity> {
        Some(TableIdentity {
            netns_inode,
            boot_id: boot_id.to_owned(),
        })
    }

    /// A reading with these `drop` values per CPU (and `early_drop` = drop / 2).
    fn reading(drops: &[u64], identity: Option<TableIdentity>) -> ConntrackStatus {
        let per_cpu: Vec<CpuStats> = drops
            .iter()
            .enumerate()
            .map(|(cpu, &drop)| CpuStats {
                cpu: cpu as u32,
                stats: ConntrackStats {
                    drop,
                    early_drop: drop / 2,
                    ..ConntrackStats::default()
                },
            })
            .collect();
        ConntrackStatus {
            count: 0,
            max: 65_536,
            buckets: 65_536,
            stats: ConntrackStats {
                drop: drops.iter().sum(),
                early_drop: drops.iter().map(|d| d / 2).sum(),
                ..ConntrackStats::default()
            },
            entry_bytes: Some(256),
            host_memory_bytes: 1 << 30,
            per_cpu,
            identity,
            memory: Default::default(),
        }
    }

    #[test]
    fn the_increase_of_a_32_bit_counter_wraps() {
        assert_eq!(increase_u32(10, 25), 15);
        assert_eq!(increase_u32(7, 7), 0);
        // 2^32 - 10 over the top to 5: 15 more events.
        assert_eq!(increase_u32(TOP - 9, 5), 15);
        assert_eq!(increase_u32(TOP, 0), 1);
    }

    #[test]
    fn the_first_reading_is_the_baseline_and_totals_start_at_zero() {
        let mut tracker = CounterTracker::default();
        let (totals, continuity) = tracker.observe(&reading(&[1_000, 2_000], identity(1, "a")));
        assert_eq!(continuity, Continuity::First);
        assert_eq!(totals, ConntrackStats::default());
        let (totals, continuity) = tracker.observe(&reading(&[1_010, 2_005], identity(1, "a")));
        assert_eq!(continuity, Continuity::Same);
        assert_eq!((totals.drop, totals.early_drop), (15, 7));
    }

    #[test]
    fn one_cpu_wrapping_is_a_small_increase_not_a_fall_of_the_sum() {
        let mut tracker = CounterTracker::default();
        tracker.observe(&reading(&[TOP - 4, 100], identity(1, "a")));
        // CPU 0 wrapped: the sum fell by nearly 2^32, yet 7 + 3 events happened.
        let (totals, continuity) = tracker.observe(&reading(&[2, 103], identity(1, "a")));
        assert_eq!(continuity, Continuity::Same, "a fall is not a reset");
        assert_eq!(totals.drop, 10);
    }

    #[test]
    fn a_large_fall_with_the_same_identity_is_still_a_wrap() {
        // Judged by identity, not by size: a fall by half the range is a wrap too.
        let mut tracker = CounterTracker::default();
        tracker.observe(&reading(&[1 << 31], identity(1, "a")));
        let (totals, continuity) = tracker.observe(&reading(&[5], identity(1, "a")));
        assert_eq!(continuity, Continuity::Same);
        assert_eq!(totals.drop, (1 << 31) + 5);
    }

    #[test]
    fn another_namespace_or_boot_is_a_reset_counted_from_zero() {
        let mut tracker = CounterTracker::default();
        tracker.observe(&reading(&[1_000, 1_000], identity(1, "a")));
        let (totals, continuity) = tracker.observe(&reading(&[1_002, 1_000], identity(1, "a")));
        assert_eq!((totals.drop, continuity), (2, Continuity::Same));
        // The namespace was recreated: new counters, 3 events since.
        let (totals, continuity) = tracker.observe(&reading(&[3, 0], identity(2, "a")));
        assert_eq!((totals.drop, continuity), (5, Continuity::Reset));
        // A reboot (the inode may come back): 4 events since.
        let (totals, continuity) = tracker.observe(&reading(&[4, 0], identity(2, "b")));
        assert_eq!((totals.drop, continuity), (9, Continuity::Reset));
        // Even when the new counters are higher than the old ones, they are new.
        tracker.observe(&reading(&[10], identity(3, "b")));
        let (totals, _) = tracker.observe(&reading(&[10], identity(3, "b")));
        assert_eq!(
            totals.drop, 19,
            "the reset counted 10, the next reading nothing"
        );
    }

    #[test]
    fn an_unknown_identity_is_never_a_reset() {
        let mut tracker = CounterTracker::default();
        tracker.observe(&reading(&[50], identity(1, "a")));
        let (totals, continuity) = tracker.observe(&reading(&[60], None));
        assert_eq!((totals.drop, continuity), (10, Continuity::Same));
        let (totals, continuity) = tracker.observe(&reading(&[70], identity(9, "z")));
        assert_eq!((totals.drop, continuity), (20, Continuity::Same));
    }

    #[test]
    fn totals_never_go_down_whatever_the_readings_do() {
        let mut tracker = CounterTracker::default();
        let mut previous = 0;
        let readings: [(&[u64], u64, &str); 7] = [
            (&[TOP - 1, 7], 1, "a"),
            (&[1, 3], 1, "a"),
            (&[0, 0], 2, "a"),
            (&[TOP, TOP], 2, "a"),
            (&[0, 1], 2, "a"),
            (&[5, 5], 2, "b"),
            (&[4, 5], 2, "b"),
        ];
        for (drops, inode, boot) in readings {
            let (totals, _) = tracker.observe(&reading(drops, identity(inode, boot)));
            assert!(totals.drop >= previous, "{} < {previous}", totals.drop);
            previous = totals.drop;
        }
    }

    #[test]
    fn a_cpu_not_seen_before_is_a_baseline() {
        let mut tracker = CounterTracker::default();
        tracker.observe(&reading(&[10], identity(1, "a")));
        let (totals, _) = tracker.observe(&reading(&[12, 1_000_000], identity(1, "a")));
        assert_eq!(
            totals.drop, 2,
            "the new CPU's history is not counted as recent"
        );
        let (totals, _) = tracker.observe(&reading(&[12, 1_000_004], identity(1, "a")));
        assert_eq!(totals.drop, 6);
    }

    #[test]
    fn without_per_cpu_values_sums_are_compared_and_never_negative() {
        let mut tracker = CounterTracker::default();
        let mut older = reading(&[100], identity(1, "a"));
        older.per_cpu.clear();
        tracker.observe(&older);
        let mut newer = reading(&[90], identity(1, "a"));
        newer.per_cpu.clear();
        assert_eq!(tracker.observe(&newer).0.drop, 0);
        let mut grown = reading(&[95], identity(1, "a"));
        grown.per_cpu.clear();
        assert_eq!(tracker.observe(&grown).0.drop, 5);
    }
}
