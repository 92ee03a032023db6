//! The readings of the counting table kept over time, and what they say about each trailing
//! window: a key's new flows in a window are its counter now minus its counter at the window's
//! start.
//!
//! Readings arrive every few seconds. The last 70 s are kept whole, so the 10 s and 1 min windows
//! start within one reading of where they should; older readings are thinned to one per minute,
//! so the 10 min window starts up to a minute early. Each window says how many seconds it really
//! covers, and a rate divides by that.

use std::{collections::VecDeque, time::Instant};

use std::collections::BTreeMap;

use ctguard_protocol::{
    CreatorCount, CreatorKey, CreatorList, CreatorWindow,
    creators::{MAX_CREATORS_PER_LIST, TurnedAway, TurnedAwaySource, WINDOWS_SECS},
};

use super::ruleset::{CreatorId, Reading, SetReading};

/// Readings younger than this are all kept.
const KEEP_WHOLE_SECS: u64 = 70;
/// Older readings are kept one per bucket of this many seconds.
const THIN_BUCKET_SECS: u64 = 60;

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    reading: Reading,
}

/// The readings since the table was (re)installed, its empty first state included.
#[derive(Debug, Clone)]
pub struct History {
    origin: Instant,
    samples: VecDeque<Sample>,
    longest_window_secs: u64,
}

impl History {
    /// A table installed at `at`: every counter is zero there.
    pub fn installed(at: Instant, longest_window_secs: u32) -> Self {
        Self {
            origin: at,
            samples: VecDeque::from([Sample {
                at,
                reading: Reading::default(),
            }]),
            longest_window_secs: u64::from(longest_window_secs),
        }
    }

    /// Adds a reading; `watched`: who is turned away was counted since the previous one. The
    /// kernel's drops since then are added to the watched or the unwatched total.
    pub fn push(&mut self, at: Instant, mut reading: Reading, watched: bool) {
        let previous = self.samples.back().map(|s| &s.reading);
        let (watched_before, unwatched_before) =
            previous.map_or((0, 0), |p| (p.drops_watched, p.drops_unwatched));
        // The installed state has no statistic: the first reading is the baseline.
        let dropped = previous
            .filter(|p| !p.kernel_drops.is_empty())
            .map_or(0, |p| drop_increase(&p.kernel_drops, &reading.kernel_drops));
        reading.drops_watched = watched_before + if watched { dropped } else { 0 };
        reading.drops_unwatched = unwatched_before + if watched { 0 } else { dropped };
        self.samples.push_back(Sample { at, reading });
        self.thin();
    }

    /// The newest reading's total count of new flows.
    pub fn newest_total(&self) -> u64 {
        self.samples.back().map_or(0, |s| s.reading.total)
    }

    /// How many readings are kept (bounded whatever the uptime).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn thin(&mut self) {
        let Some(newest) = self.samples.back().map(|s| s.at) else {
            return;
        };
        let mut kept = VecDeque::with_capacity(self.samples.len());
        let mut last_bucket = None;
        while let Some(sample) = self.samples.pop_back() {
            let age = newest.duration_since(sample.at).as_secs();
            if age >= self.longest_window_secs {
                // The newest reading old enough to start the longest window; older ones are
                // never needed again.
                kept.push_front(sample);
                break;
            }
            if age > KEEP_WHOLE_SECS {
                let bucket = sample.at.duration_since(self.origin).as_secs() / THIN_BUCKET_SECS;
                if last_bucket == Some(bucket) {
                    continue;
                }
                last_bucket = Some(bucket);
            }
            kept.push_front(sample);
        }
        self.samples = kept;
    }

    /// The window of `seconds` ending at the newest reading, with at most `limit` creators per
    /// key.
    pub fn window(&self, seconds: u32, limit: usize) -> CreatorWindow {
        let (Some(start), Some(end)) = (self.start_of(seconds), self.samples.back()) else {
            return CreatorWindow {
                seconds,
                covered_secs: 0,
                new_flows: 0,
                lists: Vec::new(),
                turned_away: self.turned_away(seconds, limit),
            };
        };
        let covered = end.at.duration_since(start.at).as_secs_f64().round();
        let empty = SetReading::default();
        CreatorWindow {
            seconds,
            // Saturating float-to-int conversion; a window is at most minutes long.
            covered_secs: covered as u32,
            new_flows: end.reading.total.saturating_sub(start.reading.total),
            lists: CreatorKey::ALL
                .into_iter()
                .map(|key| {
                    let now = end.reading.sets.get(&key).unwrap_or(&empty);
                    let then = start.reading.sets.get(&key).unwrap_or(&empty);
                    list(key, now, then, limit)
                })
                .collect(),
            turned_away: self.turned_away(seconds, limit),
        }
    }

    /// Who conntrack turned away in the window of `seconds` ending at the newest reading.
    pub fn turned_away(&self, seconds: u32, limit: usize) -> TurnedAway {
        let (Some(start), Some(end)) = (self.start_of(seconds), self.samples.back()) else {
            return TurnedAway {
                top: Vec::new(),
                rest: 0,
                uncounted: 0,
                kernel_drops: 0,
                unwatched_drops: 0,
            };
        };
        let (now, then) = (&end.reading, &start.reading);
        let attempts = increases(&now.attempts, &then.attempts);
        let passed: BTreeMap<CreatorId, u64> =
            increases(&now.passed, &then.passed).into_iter().collect();
        let dropped: Vec<(CreatorId, u64)> = attempts
            .into_iter()
            .filter_map(|(id, tried)| {
                let through = passed.get(&id).copied().unwrap_or(0);
                let refused = tried.saturating_sub(through);
                (refused > 0).then_some((id, refused))
            })
            .collect();
        let (dropped, rest) = top_and_rest(dropped, limit);
        // A source the full attempts set could not hold tried in its overflow counter; its
        // passed packets are in the passed set or that set's overflow. Both leave the sources'
        // overflow.
        let held = |id: &CreatorId| {
            now.attempts
                .elements
                .binary_search_by_key(id, |(id, _)| *id)
                .is_ok()
        };
        let passed_unheld: u64 = passed
            .iter()
            .filter(|(id, _)| !held(id))
            .map(|(_, n)| n)
            .sum();
        let overflow_tried = now
            .attempts
            .uncounted
            .saturating_sub(then.attempts.uncounted);
        let overflow_through =
            now.passed.uncounted.saturating_sub(then.passed.uncounted) + passed_unheld;
        TurnedAway {
            top: dropped
                .into_iter()
                .map(|(id, packets)| TurnedAwaySource {
                    address: id.address,
                    packets,
                })
                .collect(),
            rest,
            uncounted: overflow_tried.saturating_sub(overflow_through),
            kernel_drops: now.drops_watched.saturating_sub(then.drops_watched),
            unwatched_drops: now.drops_unwatched.saturating_sub(then.drops_unwatched),
        }
    }

    /// Every window ([`WINDOWS_SECS`]) with the most creators an answer may ask for: computed
    /// once per reading, so that an answer is a copy cut to its limit ([`shortened`]) and costs
    /// nothing that grows with the sets.
    pub fn windows(&self) -> Vec<CreatorWindow> {
        WINDOWS_SECS
            .iter()
            .map(|&seconds| self.window(seconds, usize::from(MAX_CREATORS_PER_LIST)))
            .collect()
    }

    /// The newest reading at least `seconds` older than the newest, or the oldest there is.
    fn start_of(&self, seconds: u32) -> Option<&Sample> {
        let newest = self.samples.back()?.at;
        self.samples
            .iter()
            .rev()
            .find(|s| newest.duration_since(s.at).as_secs_f64() >= f64::from(seconds) - 0.5)
            .or_else(|| self.samples.front())
    }
}

/// The kernel's drops between two readings of its per-CPU counters: `unsigned int`s, so an
/// increase is a difference modulo 2^32; a CPU absent before counted from zero.
fn drop_increase(before: &BTreeMap<u32, u32>, now: &BTreeMap<u32, u32>) -> u64 {
    now.iter()
        .map(|(cpu, &drops)| u64::from(drops.wrapping_sub(before.get(cpu).copied().unwrap_or(0))))
        .sum()
}

/// Each element's increase between two readings, the ones that grew. A counter lower than
/// before belongs to an element that expired and came back (idle for the whole element timeout,
/// so nothing of its old count falls in the window): its whole count is new.
fn increases(now: &SetReading, then: &SetReading) -> Vec<(CreatorId, u64)> {
    now.elements
        .iter()
        .filter_map(|(id, count)| {
            let before = then
                .elements
                .binary_search_by_key(id, |(id, _)| *id)
                .map_or(0, |i| then.elements[i].1);
            let grew = if before <= *count {
                count - before
            } else {
                *count
            };
            (grew > 0).then_some((*id, grew))
        })
        .collect()
}

/// A window cut to `limit` creators per list: what no longer fits moves into the list's `rest`,
/// as if the window had been computed with that limit.
pub fn shortened(window: &CreatorWindow, limit: usize) -> CreatorWindow {
    let lists = window
        .lists
        .iter()
        .map(|list| CreatorList {
            key: list.key,
            top: list.top.iter().take(limit).cloned().collect(),
            rest: list.rest
                + list
                    .top
                    .iter()
                    .skip(limit)
                    .map(|c| c.new_flows)
                    .sum::<u64>(),
            uncounted: list.uncounted,
        })
        .collect();
    let away = &window.turned_away;
    CreatorWindow {
        seconds: window.seconds,
        covered_secs: window.covered_secs,
        new_flows: window.new_flows,
        lists,
        turned_away: TurnedAway {
            top: away.top.iter().take(limit).cloned().collect(),
            rest: away.rest + away.top.iter().skip(limit).map(|s| s.packets).sum::<u64>(),
            uncounted: away.uncounted,
            kernel_drops: away.kernel_drops,
            unwatched_drops: away.unwatched_drops,
        },
    }
}

/// The `limit` largest counts, largest first (ties by id), and the sum of the others: a
/// selection, not a sort of every element, since a full set holds thousands.
fn top_and_rest(mut counts: Vec<(CreatorId, u64)>, limit: usize) -> (Vec<(CreatorId, u64)>, u64) {
    let order = |a: &(CreatorId, u64), b: &(CreatorId, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if counts.len() > limit && limit > 0 {
        counts.select_nth_unstable_by(limit - 1, order);
    }
    let rest = counts.iter().skip(limit).map(|(_, n)| n).sum();
    counts.truncate(limit);
    counts.sort_unstable_by(order);
    (counts, rest)
}

/// A key's creators between two readings.
fn list(key: CreatorKey, now: &SetReading, then: &SetReading, limit: usize) -> CreatorList {
    let (counts, rest) = top_and_rest(increases(now, then), limit);
    CreatorList {
        key,
        top: counts
            .into_iter()
            .map(|(id, new_flows)| CreatorCount {
                address: id.address,
                protocol: id.protocol,
                port: id.port,
                new_flows,
            })
            .collect(),
        rest,
        uncounted: now.uncounted.saturating_sub(then.uncounted),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;

    fn source(last_octet: u8) -> CreatorId {
        CreatorId {
            address: std::net::IpAddr::from([192, 0, 2, last_octet]),
            protocol: None,
            port: None,
        }
    }

    fn reading(total: u64, sources: &[(u8, u64)], uncounted: u64) -> Reading {
        let mut elements: Vec<_> = sources.iter().map(|&(o, n)| (source(o), n)).collect();
        elements.sort_unstable_by_key(|(id, _)| *id);
        Reading {
            total,
            sets: BTreeMap::from([(
                CreatorKey::Source,
                SetReading {
                    elements,
                    uncounted,
                },
            )]),
            ..Reading::default()
        }
    }

    fn top(window: &CreatorWindow) -> Vec<(u8, u64)> {
        window
            .list(CreatorKey::Source)
            .expect("a source list")
            .top
            .iter()
            .map(|c| match c.address {
                std::net::IpAddr::V4(v4) => (v4.octets()[3], c.new_flows),
                std::net::IpAddr::V6(_) => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn each_window_counts_from_its_own_start() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        // .7 creates 100 per 10 s throughout; .9 made 500 in the first 10 s only.
        history.push(
            t0 + Duration::from_secs(10),
            reading(600, &[(7, 100), (9, 500)], 0),
            true,
        );
        for step in 2..=6u64 {
            history.push(
                t0 + Duration::from_secs(10 * step),
                reading(500 + 100 * step, &[(7, 100 * step), (9, 500)], 0),
                true,
            );
        }
        let last_10s = history.window(10, 10);
        assert_eq!((last_10s.covered_secs, last_10s.new_flows), (10, 100));
        assert_eq!(top(&last_10s), [(7, 100)], ".9 is idle now");
        let last_minute = history.window(60, 10);
        assert_eq!(
            (last_minute.covered_secs, last_minute.new_flows),
            (60, 1100)
        );
        assert_eq!(top(&last_minute), [(7, 600), (9, 500)]);
        assert_eq!(last_minute.per_second(600), 10);
        let ten_minutes = history.window(600, 10);
        assert_eq!(
            ten_minutes.covered_secs, 60,
            "only a minute counted so far: says so"
        );
    }

    #[test]
    fn the_top_is_bounded_and_the_rest_and_overflow_add_up() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        history.push(
            t0 + Duration::from_secs(10),
            reading(1000, &[(1, 10), (2, 300), (3, 20), (4, 70)], 600),
            true,
        );
        let window = history.window(10, 2);
        assert_eq!(top(&window), [(2, 300), (4, 70)], "biggest first");
        let list = window.list(CreatorKey::Source).expect("a source list");
        assert_eq!(list.rest, 30);
        assert_eq!(list.uncounted, 600);
        assert_eq!(
            300 + 70 + list.rest + list.uncounted,
            window.new_flows,
            "every flow is somewhere"
        );
    }

    #[test]
    fn an_answer_cut_from_the_widest_window_is_the_window_computed_at_its_limit() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        let sources: Vec<(u8, u64)> = (1..=80u8).map(|o| (o, u64::from(o % 7) * 10 + 1)).collect();
        let mut away = stages(&sources, &sources[..20], &[(0, 3)]);
        away.sets = reading(5000, &sources, 40).sets;
        away.total = 5000;
        history.push(t0 + Duration::from_secs(10), away, true);
        let widest = history.windows();
        assert_eq!(widest.len(), WINDOWS_SECS.len());
        for limit in [0, 1, 3, 10, 50] {
            for (seconds, wide) in WINDOWS_SECS.iter().zip(&widest) {
                assert_eq!(
                    shortened(wide, limit),
                    history.window(*seconds, limit),
                    "limit {limit}, {seconds} s"
                );
            }
        }
        let list = widest[0].list(CreatorKey::Source).expect("a source list");
        assert_eq!(list.top.len(), 50, "cut at the most an answer may ask for");
        assert!(
            list.top
                .windows(2)
                .all(|w| w[0].new_flows >= w[1].new_flows),
            "largest first"
        );
    }

    #[test]
    fn a_counter_that_went_back_is_an_element_that_came_back() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        history.push(
            t0 + Duration::from_secs(10),
            reading(50, &[(5, 50)], 0),
            true,
        );
        history.push(
            t0 + Duration::from_secs(20),
            reading(53, &[(5, 3)], 0),
            true,
        );
        assert_eq!(top(&history.window(10, 10)), [(5, 3)]);
    }

    #[test]
    fn a_long_uptime_keeps_a_bounded_history_that_still_reaches_ten_minutes_back() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        for step in 1..=720u64 {
            // Two hours at one reading per 10 s, .7 creating 1 per second.
            history.push(
                t0 + Duration::from_secs(10 * step),
                reading(10 * step, &[(7, 10 * step)], 0),
                true,
            );
        }
        assert!(
            history.len() <= 8 + 11 + 1,
            "{} readings kept",
            history.len()
        );
        let ten_minutes = history.window(600, 10);
        assert!(
            (600..=660).contains(&ten_minutes.covered_secs),
            "{}",
            ten_minutes.covered_secs
        );
        assert_eq!(
            ten_minutes.new_flows,
            u64::from(ten_minutes.covered_secs),
            "1 per second"
        );
        assert_eq!(history.window(60, 10).covered_secs, 60);
        assert_eq!(history.window(10, 10).covered_secs, 10);
    }

    fn stages(attempts: &[(u8, u64)], passed: &[(u8, u64)], drops: &[(u32, u32)]) -> Reading {
        let set = |counts: &[(u8, u64)]| {
            let mut elements: Vec<_> = counts.iter().map(|&(o, n)| (source(o), n)).collect();
            elements.sort_unstable_by_key(|(id, _)| *id);
            SetReading {
                elements,
                uncounted: 0,
            }
        };
        Reading {
            attempts: set(attempts),
            passed: set(passed),
            kernel_drops: drops.iter().copied().collect(),
            ..Reading::default()
        }
    }

    #[test]
    fn turned_away_is_what_tried_less_what_passed_beside_the_kernels_drops() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        history.push(
            t0 + Duration::from_secs(10),
            stages(
                &[(66, 100), (10, 40)],
                &[(66, 100), (10, 40)],
                &[(0, 5), (1, u32::MAX - 1)],
            ),
            true,
        );
        // The table filled: .66 tried 900 more and 100 got through; .10 was not refused.
        history.push(
            t0 + Duration::from_secs(20),
            stages(
                &[(66, 1000), (10, 45)],
                &[(66, 200), (10, 45)],
                &[(0, 405), (1, 399)],
            ),
            true,
        );
        let away = history.turned_away(10, 10);
        let named: Vec<_> = away
            .top
            .iter()
            .map(|s| (s.address.to_string(), s.packets))
            .collect();
        assert_eq!(
            named,
            [("192.0.2.66".to_owned(), 800)],
            "a busy source let through is not named"
        );
        assert_eq!(
            away.kernel_drops,
            400 + 401,
            "CPU 1's counter wrapped past 2^32"
        );
        assert_eq!(away.counted(), 800);
    }

    #[test]
    fn drops_while_nobody_was_counted_are_kept_apart_from_the_comparison() {
        let t0 = Instant::now();
        let mut history = History::installed(t0, 600);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Since boot: 1,000 drops before the helper's first reading (the baseline).
        history.push(at(10), stages(&[], &[], &[(0, 1000)]), false);
        // 30 drops before the watch began, then 200 refused and counted while watching.
        history.push(at(20), stages(&[], &[], &[(0, 1030)]), false);
        history.push(at(30), stages(&[(66, 200)], &[], &[(0, 1230)]), true);
        let away = history.turned_away(30, 10);
        assert_eq!(away.counted(), 200);
        assert_eq!(
            (away.kernel_drops, away.unwatched_drops),
            (200, 30),
            "the comparison covers the watched seconds; boot's drops are nobody's"
        );
        assert_eq!(history.turned_away(10, 10).unwatched_drops, 0);
    }

    #[test]
    fn nothing_counted_yet_is_an_empty_window_not_a_rate() {
        let history = History::installed(Instant::now(), 600);
        let window = history.window(60, 10);
        assert_eq!((window.covered_secs, window.new_flows), (0, 0));
        assert_eq!(window.per_second(0), 0);
    }
}
