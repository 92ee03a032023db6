//! Rates and the time-to-full forecast, computed from readings of the table: pure maths shared by the
//! server-side render and the browser, so both show the same numbers.
//!
//! The counters in a [`Point`] are the sampler's totals that never go down (per-CPU increases
//! across 32-bit wraps, a reset told by the table's identity: `server/src/sampler/counters.rs`),
//! so a rate is a plain difference; the only fall left is a server restart (totals start at zero
//! again), read as no increase.

use std::collections::VecDeque;

use ctguard_protocol::{ConntrackStats, ConntrackStatus};
use serde::{Deserialize, Serialize};

/// The window over which the rates beside the gauge are taken.
pub const RATE_WINDOW_MS: u64 = 5_000;
/// The window over which the table's growth is taken for the forecast: long enough to smooth
/// single bursts, short enough to notice a flood within half a minute.
pub const FORECAST_WINDOW_MS: u64 = 30_000;
/// Growth that would take longer than this to fill the table counts as stable.
const HORIZON_SECS: f64 = 7.0 * 86_400.0;

/// What the rates and counters beside the gauge mean, in the dashboard's words (one place, so a
/// test holds them to the kernel). New entries: a lower bound, never the `insert` counter.
pub const NEW_ENTRIES_MEANING: &str = "at least: growth plus evictions (the kernel's insert \
    counter counts only entries made over ctnetlink or BPF, not new connections)";
/// `drop` counts packets `nf_conntrack_in` dropped: mostly a full table (no entry could be
/// allocated), also clashes `nf_ct_resolve_clash` could not resolve.
pub const DROP_MEANING: &str = "packets conntrack dropped: mostly for a full table, also for \
    clashes it could not resolve (see insert_failed)";
/// `insert_failed` counts entries `__nf_conntrack_confirm` could not insert: unresolved clashes
/// (two CPUs creating the same flow) and chains over the kernel's bound (`chaintoolong`).
pub const INSERT_FAILED_MEANING: &str = "entries not inserted: clashes between CPUs it could not \
    resolve, or chains too long (too few buckets)";
/// `early_drop` evicts an entry that is not ASSURED to make room for a new one.
pub const EARLY_DROP_MEANING: &str = "entries evicted to make room (never assured ones)";
/// `clash_resolve` counts clashes `nf_ct_resolve_clash` resolved: the packet goes on with the
/// entry already in the table (or one merged into it), nothing is dropped.
pub const CLASH_RESOLVE_MEANING: &str = "clashes between CPUs resolved by using the entry already \
    there (harmless; typical of DNS over UDP)";
/// `chaintoolong` counts inserts `__nf_conntrack_confirm` refused because a hash chain passed its
/// bound (`nf_ct_chain_too_long`): the packet is dropped; also counted in insert_failed.
pub const CHAINTOOLONG_MEANING: &str = "new entries refused because a hash chain was too long: \
    too few buckets for the entries (also in insert_failed)";

/// One reading, reduced to what the chart, the rates and the forecast need. Short field names:
/// fifteen minutes of these go to every browser on its first render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub at_ms: u64,
    #[serde(rename = "c")]
    pub count: u64,
    #[serde(rename = "m")]
    pub max: u64,
    #[serde(rename = "d")]
    pub drop: u64,
    #[serde(rename = "e")]
    pub early_drop: u64,
    #[serde(rename = "f")]
    pub insert_failed: u64,
    #[serde(rename = "i")]
    pub insert: u64,
}

impl Point {
    /// A reading: the fill from `status`, the counters from the sampler's never-falling `counters`
    /// (`LiveSample::Up::counters`), not from `status.stats`.
    pub fn from_sample(at_ms: u64, status: &ConntrackStatus, counters: &ConntrackStats) -> Self {
        Self {
            at_ms,
            count: status.count,
            max: status.max,
            drop: counters.drop,
            early_drop: counters.early_drop,
            insert_failed: counters.insert_failed,
            insert: counters.insert,
        }
    }
}

/// The increase of a total between two points: never negative (totals start at zero again when
/// the server restarts, and that interval counts nothing).
pub fn counter_delta(before: u64, now: u64) -> u64 {
    now.saturating_sub(before)
}

/// Events per second over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// New entries per second, a lower bound: `max(0, Δcount + early_drop)` over the window. Each
    /// eviction made room for a new entry; entries that expired or were deleted in the window hide
    /// as many new ones. Never the kernel's `insert` counter: on 5.x/6.x the packet path does not
    /// count it (`__nf_conntrack_confirm` no longer does; only ctnetlink and BPF inserts, through
    /// `nf_conntrack_hash_check_insert`, do), so it is not the rate of new connections.
    pub new_entries: f64,
    /// Change of the entry count per second (negative while the table drains).
    pub net_growth: f64,
    pub drop: f64,
    pub early_drop: f64,
    pub insert_failed: f64,
    /// The window the rates were taken over.
    pub seconds: f64,
}

/// Rates between two readings, or `None` when they are not in time order.
pub fn rates(older: &Point, newer: &Point) -> Option<Rates> {
    if newer.at_ms <= older.at_ms {
        return None;
    }
    let seconds = (newer.at_ms - older.at_ms) as f64 / 1000.0;
    let per_second = |before: u64, now: u64| counter_delta(before, now) as f64 / seconds;
    let net_growth = (newer.count as f64 - older.count as f64) / seconds;
    let early_drop = per_second(older.early_drop, newer.early_drop);
    Some(Rates {
        new_entries: (net_growth + early_drop).max(0.0),
        net_growth,
        drop: per_second(older.drop, newer.drop),
        early_drop,
        insert_failed: per_second(older.insert_failed, newer.insert_failed),
        seconds,
    })
}

/// The oldest point within `window_ms` of the newest, and the newest: the pair rates are taken
/// over. `None` with fewer than two points.
pub fn window(points: &VecDeque<Point>, window_ms: u64) -> Option<(&Point, &Point)> {
    let newest = points.back()?;
    let since = newest.at_ms.saturating_sub(window_ms);
    let older = points
        .iter()
        .find(|point| point.at_ms >= since && point.at_ms < newest.at_ms)?;
    Some((older, newest))
}

/// Where the table is heading at its current growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forecast {
    /// Too few readings yet.
    Unknown,
    /// At or above its limit now.
    Full,
    /// Growing: full in about this many seconds.
    FullIn { seconds: u64 },
    /// Neither growing nor shrinking noticeably.
    Stable,
    /// Shrinking.
    Draining,
}

/// The forecast from two readings: the growth between them, extrapolated to the newer one's limit.
/// Growth within a noise band (moving less than 1 % of the limit in ten minutes, and under one
/// entry per second) is stable.
pub fn forecast(older: &Point, newer: &Point) -> Forecast {
    if newer.max > 0 && newer.count >= newer.max {
        return Forecast::Full;
    }
    let Some(rates) = rates(older, newer) else {
        return Forecast::Unknown;
    };
    let band = (newer.max as f64 * 0.01 / 600.0).max(1.0);
    let growth = rates.net_growth;
    if growth > band && newer.max > 0 {
        let seconds = (newer.max - newer.count) as f64 / growth;
        if seconds > HORIZON_SECS {
            Forecast::Stable
        } else {
            Forecast::FullIn {
                seconds: seconds.ceil() as u64,
            }
        }
    } else if growth < -band {
        Forecast::Draining
    } else {
        Forecast::Stable
    }
}

impl Forecast {
    /// What the dashboard says: "full in 3 min", "stable", "draining".
    pub fn describe(self) -> String {
        match self {
            Self::Unknown => "not enough readings yet".to_owned(),
            Self::Full => "full now".to_owned(),
            Self::FullIn { seconds } => format!("full in {}", duration(seconds)),
            Self::Stable => "stable".to_owned(),
            Self::Draining => "draining".to_owned(),
        }
    }

    /// A stable CSS class / test value.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Full => "full",
            Self::FullIn { .. } => "filling",
            Self::Stable => "stable",
            Self::Draining => "draining",
        }
    }
}

/// A rough duration for people: `45 s`, `3 min`, `5 h`, `2 d`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..90 => format!("{seconds} s"),
        90..5_400 => format!("{} min", (seconds + 30) / 60),
        5_400..172_800 => format!("{} h", (seconds + 1_800) / 3_600),
        _ => format!("{} d", (seconds + 43_200) / 86_400),
    }
}

/// A rate for people: `0/s`, `0.4/s`, `12/s`, `1,234/s`.
pub fn per_second(rate: f64) -> String {
    if rate <= 0.0 {
        "0/s".to_owned()
    } else if rate < 10.0 {
        format!("{rate:.1}/s")
    } else {
        format!("{}/s", crate::format::thousands(rate.round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_s: u64, count: u64, max: u64) -> Point {
        Point {
            at_ms: at_s * 1000,
            count,
            max,
            ..Point::default()
        }
    }

    #[test]
    fn a_growing_counter_gives_its_difference() {
        assert_eq!(counter_delta(10, 25), 15);
        assert_eq!(counter_delta(7, 7), 0);
    }

    #[test]
    fn a_total_that_falls_counts_nothing() {
        // The server restarted and its totals start at zero again: no negative, no spike.
        assert_eq!(counter_delta(1_000_000, 5), 0);
        // A fall of 2^32 - 15 is not read as a wrap here: wraps are taken per CPU upstream.
        assert_eq!(counter_delta((1u64 << 32) - 10 + 1_000, 5 + 1_000), 0);
    }

    #[test]
    fn points_take_the_counters_from_the_totals_not_the_kernel_sum() {
        let status = ConntrackStatus {
            count: 10,
            max: 100,
            buckets: 100,
            stats: ConntrackStats {
                drop: 4_000_000_000,
                ..ConntrackStats::default()
            },
            entry_bytes: None,
            host_memory_bytes: 1 << 30,
            per_cpu: Vec::new(),
            identity: None,
            memory: Default::default(),
        };
        let totals = ConntrackStats {
            drop: 12,
            early_drop: 3,
            ..ConntrackStats::default()
        };
        let point = Point::from_sample(5_000, &status, &totals);
        assert_eq!((point.count, point.drop, point.early_drop), (10, 12, 3));
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        let older = Point {
            drop: 100,
            early_drop: 50,
            insert_failed: 4,
            ..point(10, 1_000, 10_000)
        };
        let newer = Point {
            drop: 110,
            early_drop: 50,
            insert_failed: 0, // reset
            ..point(15, 900, 10_000)
        };
        let rates = rates(&older, &newer).expect("in order");
        assert_eq!(rates.seconds, 5.0);
        assert_eq!(rates.drop, 2.0);
        assert_eq!(rates.early_drop, 0.0);
        assert_eq!(rates.insert_failed, 0.0);
        assert_eq!(rates.net_growth, -20.0);
        assert_eq!(
            rates.new_entries, 0.0,
            "a shrinking table shows no negative inserts"
        );
    }

    #[test]
    fn new_entries_are_growth_plus_evictions_a_lower_bound() {
        // The 6.18 case: 500 more entries and 100 evictions in 5 s.
        let older = point(0, 1_000, 10_000);
        let newer = Point {
            early_drop: 100,
            ..point(5, 1_500, 10_000)
        };
        let rates = rates(&older, &newer).expect("in order");
        assert_eq!(rates.new_entries, 120.0);
        // Expiries outpacing evictions hide the new entries: the bound is 0, never negative.
        let shrinking = Point {
            early_drop: 50,
            ..point(5, 800, 10_000)
        };
        let rates = rates_of(&older, &shrinking);
        assert_eq!(rates.new_entries, 0.0);
        // 200 fewer entries but 300 evictions: at least 100 new ones in 5 s.
        let churning = Point {
            early_drop: 300,
            ..point(5, 800, 10_000)
        };
        assert_eq!(rates_of(&older, &churning).new_entries, 20.0);
    }

    #[test]
    fn the_insert_counter_is_never_taken_for_new_connections() {
        // ctnetlink or BPF inserted 300 entries; the table did not grow and nothing was evicted.
        let older = Point {
            insert: 1_000,
            ..point(0, 1_000, 10_000)
        };
        let newer = Point {
            insert: 1_300,
            ..point(2, 1_000, 10_000)
        };
        assert_eq!(rates_of(&older, &newer).new_entries, 0.0);
    }

    #[test]
    fn the_counters_are_described_as_the_kernel_counts_them() {
        assert!(NEW_ENTRIES_MEANING.starts_with("at least"), "a lower bound");
        assert!(NEW_ENTRIES_MEANING.contains("not new connections"));
        assert!(DROP_MEANING.contains("full table"));
        assert!(DROP_MEANING.contains("clashes"), "not \"table full\" alone");
        assert!(!DROP_MEANING.contains("because the table was full"));
        assert!(
            INSERT_FAILED_MEANING.contains("too few buckets"),
            "chaintoolong"
        );
        assert!(EARLY_DROP_MEANING.contains("never assured"));
        assert!(CLASH_RESOLVE_MEANING.contains("harmless"));
        assert!(CHAINTOOLONG_MEANING.contains("too few buckets"));
        assert!(CHAINTOOLONG_MEANING.contains("insert_failed"));
        for meaning in [
            NEW_ENTRIES_MEANING,
            DROP_MEANING,
            INSERT_FAILED_MEANING,
            EARLY_DROP_MEANING,
            CLASH_RESOLVE_MEANING,
            CHAINTOOLONG_MEANING,
        ] {
            assert!(
                !meaning.contains("new connections per second"),
                "insert is never the rate of new connections: {meaning}"
            );
        }
    }

    fn rates_of(older: &Point, newer: &Point) -> Rates {
        rates(older, newer).expect("in order")
    }

    #[test]
    fn drop_is_what_conntrack_dropped_not_a_full_table_alone() {
        assert!(DROP_MEANING.starts_with("packets conntrack dropped"));
        assert!(DROP_MEANING.contains("mostly for a full table"));
        assert!(DROP_MEANING.contains("see insert_failed"));
    }

    #[test]
    fn chaintoolong_means_too_few_buckets_and_clash_resolve_is_harmless() {
        assert!(CHAINTOOLONG_MEANING.contains("too few buckets"));
        assert!(
            CLASH_RESOLVE_MEANING.contains("nothing") || CLASH_RESOLVE_MEANING.contains("harmless")
        );
        assert!(
            !CLASH_RESOLVE_MEANING.contains("dropped"),
            "a resolved clash drops nothing"
        );
    }

    #[test]
    fn readings_out_of_order_give_no_rates() {
        assert_eq!(rates(&point(5, 1, 10), &point(5, 2, 10)), None);
        assert_eq!(rates(&point(6, 1, 10), &point(5, 2, 10)), None);
    }

    #[test]
    fn growth_forecasts_the_time_to_full() {
        // 1,000 entries per second, 180,000 free: three minutes.
        let forecast = forecast(&point(0, 52_144, 262_144), &point(30, 82_144, 262_144));
        assert_eq!(forecast, Forecast::FullIn { seconds: 180 });
        assert_eq!(forecast.describe(), "full in 3 min");
    }

    #[test]
    fn a_full_table_is_full_whatever_the_trend() {
        assert_eq!(
            forecast(&point(0, 70_000, 65_536), &point(30, 65_536, 65_536)),
            Forecast::Full
        );
    }

    #[test]
    fn shrinking_is_draining_and_noise_is_stable() {
        assert_eq!(
            forecast(&point(0, 60_000, 262_144), &point(30, 200, 262_144)),
            Forecast::Draining
        );
        // 10 entries in 30 s on a 262,144 table: noise.
        assert_eq!(
            forecast(&point(0, 1_000, 262_144), &point(30, 1_010, 262_144)),
            Forecast::Stable
        );
        assert_eq!(
            forecast(&point(0, 1_000, 262_144), &point(30, 990, 262_144)),
            Forecast::Stable
        );
    }

    #[test]
    fn growth_too_slow_to_matter_within_a_week_is_stable() {
        // 2 entries per second into 10 million free: 58 days.
        assert_eq!(
            forecast(&point(0, 0, 10_000_000), &point(30, 60, 10_000_000)),
            Forecast::Stable
        );
    }

    #[test]
    fn a_single_reading_forecasts_nothing() {
        assert_eq!(
            forecast(&point(5, 10, 100), &point(5, 10, 100)),
            Forecast::Unknown
        );
    }

    #[test]
    fn the_window_starts_at_the_oldest_point_within_it() {
        let points: VecDeque<Point> = (0..40).map(|s| point(s, s, 100)).collect();
        let (older, newer) = window(&points, 30_000).expect("enough points");
        assert_eq!((older.at_ms, newer.at_ms), (9_000, 39_000));
        let one: VecDeque<Point> = [point(1, 1, 1)].into();
        assert!(window(&one, 30_000).is_none());
    }

    #[test]
    fn durations_and_rates_read_naturally() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(180), "3 min");
        assert_eq!(duration(4 * 3_600), "4 h");
        assert_eq!(duration(3 * 86_400), "3 d");
        assert_eq!(per_second(0.0), "0/s");
        assert_eq!(per_second(-3.0), "0/s");
        assert_eq!(per_second(0.44), "0.4/s");
        assert_eq!(per_second(1_234.4), "1,234/s");
    }
}
