//! How many expensive reads (requests that make the helper walk the conntrack table: the suspects'
//! snapshot, drill-downs, the tuning page, a change's preview) each login may ask for: a bucket per
//! login that holds a burst and refills at a steady rate. One browser, however many requests it
//! sends at once, gets only its share of the helper's read lane.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Requests a login may send at once: a person opening the suspects, drilling into a few of them.
pub const BURST: u32 = 10;
/// Then one more every this long (two a second): faster than anyone clicks.
const REFILL_EVERY: Duration = Duration::from_millis(500);
/// Logins with a bucket kept at most; past it, the full ones (idle for a while) are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Refused: the login has spent its burst; the next read is allowed after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many expensive reads; retry after {retry_after:?}")]
pub struct OverBudget {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// In units of one read.
    tokens: f64,
    filled_at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Self {
        let earned = now.saturating_duration_since(self.filled_at).as_secs_f64()
            / REFILL_EVERY.as_secs_f64();
        Self {
            tokens: (self.tokens + earned).min(f64::from(BURST)),
            filled_at: now,
        }
    }
}

#[derive(Debug, Default)]
pub struct ExpensiveReads {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl ExpensiveReads {
    /// Takes one read from `login`'s bucket, or says when the next one will be allowed.
    pub fn spend(&self, login: &str) -> Result<(), OverBudget> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(login) {
            buckets.retain(|_, bucket| bucket.refilled(now).tokens < f64::from(BURST));
        }
        let bucket = buckets.get(login).map_or(
            Bucket {
                tokens: f64::from(BURST),
                filled_at: now,
            },
            |bucket| bucket.refilled(now),
        );
        if bucket.tokens < 1.0 {
            buckets.insert(login.to_owned(), bucket);
            let missing = 1.0 - bucket.tokens;
            return Err(OverBudget {
                retry_after: REFILL_EVERY.mul_f64(missing),
            });
        }
        buckets.insert(
            login.to_owned(),
            Bucket {
                tokens: bucket.tokens - 1.0,
                ..bucket
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_gets_its_burst_then_waits_and_others_are_not_affected() {
        let reads = ExpensiveReads::default();
        for _ in 0..BURST {
            assert_eq!(reads.spend("greedy"), Ok(()));
        }
        let refused = reads.spend("greedy");
        assert!(
            refused.is_err_and(|over| over.retry_after <= REFILL_EVERY),
            "{refused:?}"
        );
        assert_eq!(reads.spend("patient"), Ok(()));
    }
}
