//! When the turned-away stages are hooked in: only while conntrack could be refusing flows.
//!
//! The stages update a per-source set for every packet that could start a flow, before and
//! after conntrack, and for UDP that is every packet, established or not (measured: 13-15 % of
//! the packets an established UDP flood gets forwarded, BENCHMARKS.md). conntrack refuses a new
//! flow only when its table is full and early drop finds nothing to evict, so the stages are
//! worth their cost only near full. They go in when the table reaches `--watch-turned-away-from`
//! percent of `nf_conntrack_max` (default 90) or the kernel's drop statistic rises, and come out
//! when neither has been seen for [`HOLD`]. A flood that fills the table within one tick of
//! [`TICK`] has its first refusals in the kernel's count and not per source: the panel shows
//! both, and `0` keeps the stages in from the start.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

/// How often the fill and the drop statistic are read.
pub const TICK: Duration = Duration::from_secs(1);
/// How long the stages stay in after the last sign of pressure: a table that hovers around
/// the threshold does not switch every second.
pub const HOLD: Duration = Duration::from_secs(30);
/// While watching, the fill that still counts as pressure is this many points lower.
const HYSTERESIS_PERCENT: u64 = 10;
pub const DEFAULT_FROM_PERCENT: u8 = 90;

/// What one tick read: the table's fill and conntrack's per-CPU drop counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pressure {
    pub count: u64,
    pub max: u64,
    /// `None` when the statistic could not be read: then only the fill decides.
    pub drops: Option<BTreeMap<u32, u32>>,
}

/// The switch's state and its rule.
#[derive(Debug, Clone)]
pub struct Watch {
    from_percent: u8,
    since: Option<SystemTime>,
    last_pressure: Option<Instant>,
    last_drops: Option<BTreeMap<u32, u32>>,
}

impl Watch {
    pub fn new(from_percent: u8) -> Self {
        Self {
            from_percent,
            since: None,
            last_pressure: None,
            last_drops: None,
        }
    }

    /// Watching from the first packet (`--watch-turned-away-from 0`).
    pub fn always(&self) -> bool {
        self.from_percent == 0
    }

    /// Since when the stages are in, if they are.
    pub fn since(&self) -> Option<SystemTime> {
        self.since
    }

    pub fn from_percent(&self) -> u8 {
        self.from_percent
    }

    /// Whether the stages should be in after this reading.
    pub fn wanted(&mut self, now: Instant, reading: &Pressure) -> bool {
        if self.always() {
            return true;
        }
        let dropped = match (&self.last_drops, &reading.drops) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        };
        if reading.drops.is_some() {
            self.last_drops.clone_from(&reading.drops);
        }
        let threshold = if self.since.is_some() {
            u64::from(self.from_percent).saturating_sub(HYSTERESIS_PERCENT)
        } else {
            u64::from(self.from_percent)
        };
        let full = reading.max > 0 && reading.count * 100 >= reading.max * threshold;
        if full || dropped {
            self.last_pressure = Some(now);
        }
        match self.since {
            None => full || dropped,
            Some(_) => self
                .last_pressure
                .is_some_and(|at| now.duration_since(at) < HOLD),
        }
    }

    /// The stages were hooked in (`on`) or taken out at `at`.
    pub fn switched(&mut self, on: bool, at: SystemTime) {
        self.since = on.then_some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(count: u64, drops: u32) -> Pressure {
        Pressure {
            count,
            max: 1000,
            drops: Some(BTreeMap::from([(0, drops)])),
        }
    }

    fn step(watch: &mut Watch, at: Instant, reading: &Pressure) -> bool {
        let on = watch.wanted(at, reading);
        if on != watch.since().is_some() {
            watch.switched(on, SystemTime::now());
        }
        on
    }

    #[test]
    fn a_table_far_from_full_is_not_watched() {
        let mut watch = Watch::new(90);
        let t0 = Instant::now();
        for second in 0..100 {
            assert!(!step(
                &mut watch,
                t0 + Duration::from_secs(second),
                &fill(850, 7)
            ));
        }
    }

    #[test]
    fn the_stages_go_in_near_full_and_stay_through_the_hold() {
        let mut watch = Watch::new(90);
        let t0 = Instant::now();
        assert!(!step(&mut watch, t0, &fill(899, 0)));
        assert!(step(&mut watch, t0 + TICK, &fill(900, 0)), "at 90 %");
        // Emptied: stays for the hold, then goes.
        assert!(step(&mut watch, t0 + 2 * TICK, &fill(10, 0)));
        assert!(step(&mut watch, t0 + TICK + HOLD - TICK, &fill(10, 0)));
        assert!(!step(&mut watch, t0 + TICK + HOLD, &fill(10, 0)));
    }

    #[test]
    fn hovering_just_below_the_threshold_keeps_watching() {
        let mut watch = Watch::new(90);
        let t0 = Instant::now();
        assert!(step(&mut watch, t0, &fill(950, 0)));
        for second in 1..200 {
            assert!(
                step(&mut watch, t0 + Duration::from_secs(second), &fill(820, 0)),
                "82 % is within the hysteresis, second {second}"
            );
        }
    }

    #[test]
    fn a_rising_drop_statistic_turns_the_watch_on_whatever_the_fill() {
        let mut watch = Watch::new(90);
        let t0 = Instant::now();
        assert!(
            !step(&mut watch, t0, &fill(100, 5)),
            "the first reading is a baseline"
        );
        assert!(step(&mut watch, t0 + TICK, &fill(100, 6)));
    }

    #[test]
    fn an_unreadable_statistic_leaves_the_fill_to_decide() {
        let mut watch = Watch::new(90);
        let t0 = Instant::now();
        let blind = Pressure {
            count: 100,
            max: 1000,
            drops: None,
        };
        assert!(!step(&mut watch, t0, &fill(100, 5)));
        assert!(!step(&mut watch, t0 + TICK, &blind));
        assert!(
            !step(&mut watch, t0 + 2 * TICK, &fill(100, 5)),
            "not a rise"
        );
    }

    #[test]
    fn zero_watches_from_the_first_packet() {
        let mut watch = Watch::new(0);
        assert!(step(&mut watch, Instant::now(), &fill(0, 0)));
    }
}
