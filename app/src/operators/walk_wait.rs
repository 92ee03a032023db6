//! What the Suspicious page says while the helper walks the table: what it waits for and roughly
//! how long, from the last walk the sampler saw (at millions of entries a walk takes seconds).

use crate::{dashboard::live::LiveSample, format::thousands};

/// The line shown while a walk is under way, from the newest live sample (if any).
pub fn walk_wait_words(sample: Option<&LiveSample>) -> String {
    let Some(LiveSample::Up {
        status, assured, ..
    }) = sample
    else {
        return "Walking the table…".to_owned();
    };
    let count = status.count;
    match assured {
        Some(last) if last.walk_ms > 0 && last.entries > 0 => {
            // A walk costs in proportion to the entries (BENCHMARKS.md: linear up to 1,048,576).
            let expected_ms =
                (u128::from(last.walk_ms) * u128::from(count) / u128::from(last.entries)) as u64;
            format!(
                "Walking the table: {} entries. The last walk, of {} entries, took {}; this one \
                 takes about {}.",
                thousands(count),
                thousands(last.entries),
                duration_words(last.walk_ms),
                duration_words(expected_ms.max(1)),
            )
        }
        _ => format!(
            "Walking the table: {} entries (a walk of a million entries takes seconds).",
            thousands(count)
        ),
    }
}

fn duration_words(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use ctguard_protocol::{ConntrackStats, HelperHealth};

    use super::*;
    use crate::dashboard::live::AssuredReading;

    fn up(count: u64, last: Option<(u64, u64)>) -> LiveSample {
        let status = ctguard_protocol::ConntrackStatus {
            count,
            max: 4 * count,
            buckets: count,
            stats: ConntrackStats::default(),
            entry_bytes: None,
            host_memory_bytes: 0,
            per_cpu: Vec::new(),
            identity: None,
            memory: Default::default(),
        };
        LiveSample::Up {
            at_ms: 0,
            status,
            kernel_log: None,
            helper: HelperHealth::default(),
            counters: ConntrackStats::default(),
            assured: last.map(|(entries, walk_ms)| AssuredReading {
                at_ms: 0,
                assured: 0,
                entries,
                walk_ms,
            }),
            top_creator: None,
            top_turned_away: None,
        }
    }

    #[test]
    fn the_wait_is_estimated_from_the_last_walk_in_proportion_to_the_entries() {
        let words = walk_wait_words(Some(&up(2_097_152, Some((1_048_576, 1_820)))));
        assert!(words.contains("2,097,152 entries"), "{words}");
        assert!(words.contains("took 1.8 s"), "{words}");
        assert!(words.contains("about 3.6 s"), "{words}");
    }

    #[test]
    fn without_a_walk_seen_yet_it_says_what_it_waits_for_and_no_figure() {
        let words = walk_wait_words(Some(&up(4_096, None)));
        assert!(words.contains("4,096 entries"), "{words}");
        assert!(!words.contains("about"), "{words}");
        assert_eq!(walk_wait_words(None), "Walking the table…");
    }
}
