//! The table's history as the dashboard charts it: one point per second for the last fifteen
//! minutes and one per minute for the last day. Pure data and folding rules, shared by the server
//! (which keeps and persists it) and the browser (which extends the copy it got on first render with
//! every live sample, by the same rules).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::dashboard::trend::Point;

/// How far back the per-second history goes.
pub const RECENT_MS: u64 = 15 * 60 * 1000;
/// How far back the per-minute history goes.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;
const MINUTE_MS: u64 = 60 * 1000;

/// One minute of the day's history: the highest count seen in it (a capacity panel cares about
/// peaks) and the limit at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutePoint {
    /// The start of the minute, in milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub at_ms: u64,
    /// The peak entry count within the minute.
    #[serde(rename = "c")]
    pub count: u64,
    #[serde(rename = "m")]
    pub max: u64,
}

/// Both histories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// One point per reading, oldest first, at most [`RECENT_MS`] old.
    pub recent: VecDeque<Point>,
    /// One point per minute, oldest first, at most [`DAY_MS`] old.
    pub minutes: VecDeque<MinutePoint>,
}

impl History {
    /// Adds a reading: appends it to the recent points, folds it into the current minute, and
    /// forgets what has aged out. A reading older than the newest one is ignored (clock steps back).
    pub fn push(&mut self, point: Point) {
        if self
            .recent
            .back()
            .is_some_and(|newest| point.at_ms <= newest.at_ms)
        {
            return;
        }
        self.recent.push_back(point);
        let minute = point.at_ms - point.at_ms % MINUTE_MS;
        match self.minutes.back_mut() {
            Some(current) if current.at_ms == minute => {
                current.count = current.count.max(point.count);
                current.max = point.max;
            }
            Some(current) if current.at_ms > minute => {}
            _ => self.minutes.push_back(MinutePoint {
                at_ms: minute,
                count: point.count,
                max: point.max,
            }),
        }
        self.forget_before(point.at_ms);
    }

    /// Drops recent points older than [`RECENT_MS`] and minutes older than [`DAY_MS`] before `now_ms`.
    pub fn forget_before(&mut self, now_ms: u64) {
        let recent_since = now_ms.saturating_sub(RECENT_MS);
        while self
            .recent
            .front()
            .is_some_and(|point| point.at_ms < recent_since)
        {
            self.recent.pop_front();
        }
        let day_since = now_ms.saturating_sub(DAY_MS);
        while self
            .minutes
            .front()
            .is_some_and(|point| point.at_ms < day_since)
        {
            self.minutes.pop_front();
        }
    }

    /// A history that starts from persisted minutes (after a restart), without recent points.
    pub fn from_minutes(minutes: impl IntoIterator<Item = MinutePoint>, now_ms: u64) -> Self {
        let mut minutes: Vec<MinutePoint> = minutes.into_iter().collect();
        minutes.sort_by_key(|point| point.at_ms);
        minutes.dedup_by_key(|point| point.at_ms);
        let mut history = Self {
            recent: VecDeque::new(),
            minutes: minutes
                .into_iter()
                .filter(|point| point.at_ms <= now_ms)
                .collect(),
        };
        history.forget_before(now_ms);
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: u64, count: u64) -> Point {
        Point {
            at_ms,
            count,
            max: 1_000,
            ..Point::default()
        }
    }

    #[test]
    fn readings_fold_into_minutes_keeping_the_peak() {
        let mut history = History::default();
        for (second, count) in [(0, 5), (1, 50), (2, 7), (60, 3), (61, 4)] {
            history.push(point(600_000 + second * 1000, count));
        }
        assert_eq!(history.recent.len(), 5);
        let minutes: Vec<(u64, u64)> = history.minutes.iter().map(|m| (m.at_ms, m.count)).collect();
        assert_eq!(minutes, vec![(600_000, 50), (660_000, 4)]);
    }

    #[test]
    fn fifteen_minutes_of_seconds_and_a_day_of_minutes_are_kept() {
        let mut history = History::default();
        let start = 1_000 * DAY_MS;
        // Two days, one reading every 10 s.
        for step in 0..(2 * 86_400 / 10) {
            history.push(point(start + step * 10_000, step));
        }
        assert_eq!(
            history.recent.len(),
            91,
            "15 min at one per 10 s, both ends"
        );
        assert_eq!(history.minutes.len(), 1_440, "24 h of minutes");
        let newest = history.recent.back().expect("points").at_ms;
        assert!(history.recent.front().expect("points").at_ms >= newest - RECENT_MS);
        assert!(history.minutes.front().expect("points").at_ms >= newest - DAY_MS);
    }

    #[test]
    fn a_reading_from_the_past_is_ignored() {
        let mut history = History::default();
        history.push(point(10_000, 1));
        history.push(point(9_000, 2));
        history.push(point(10_000, 3));
        assert_eq!(history.recent.len(), 1);
        assert_eq!(history.minutes[0].count, 1);
    }

    #[test]
    fn persisted_minutes_are_sorted_and_aged() {
        let now = 10 * DAY_MS;
        let minute = |at_ms, count| MinutePoint {
            at_ms,
            count,
            max: 9,
        };
        let history = History::from_minutes(
            [
                minute(now - 60_000, 2),
                minute(now - 2 * DAY_MS, 1),
                minute(now - 120_000, 3),
                minute(now + 60_000, 4),
            ],
            now,
        );
        let kept: Vec<u64> = history.minutes.iter().map(|m| m.count).collect();
        assert_eq!(kept, vec![3, 2]);
        assert!(history.recent.is_empty());
    }
}
