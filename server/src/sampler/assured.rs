//! The table's assured entries for the gauge: what the kernel cannot evict to make room.
//!
//! The kernel keeps no count of them (no sysctl, no statistic): only a walk of the table tells,
//! and the helper's `snapshot` already counts them (`StateMix::assured`). A walk costs what a
//! ctnetlink dump of the whole table costs (about 0.6 s of CPU for 262,144 entries, BENCHMARKS.md),
//! so the sampler asks for one every [`WALK_EVERY`] at most, and never sooner than
//! [`COST_FACTOR`] times the last walk's duration after it: at most 5 % of a CPU whatever the
//! table's size. The helper's snapshot cache shares walks with the Suspicious page's. The walk
//! runs beside the status readings, in the reads lane, so a slow one never delays the gauge.

use std::time::Duration;

use ctguard_app::dashboard::live::AssuredReading;
use ctguard_protocol::{Request, Response};
use tokio::{task::JoinHandle, time::Instant};

use crate::helper_client::{HelperClient, Lane};

/// The longest a reading of the assured entries waits for the next walk.
pub const WALK_EVERY: Duration = Duration::from_secs(30);
/// A walk waits at least this many times the last one's duration.
pub const COST_FACTOR: u32 = 20;

/// How long after a walk that took `walk_ms` the next one may start.
pub fn next_walk_after(walk_ms: u64) -> Duration {
    WALK_EVERY.max(Duration::from_millis(walk_ms).saturating_mul(COST_FACTOR))
}

/// Walks the table now and then, one walk at a time, and keeps the newest reading.
#[derive(Debug)]
pub struct AssuredWalker {
    client: HelperClient,
    walk: Option<JoinHandle<Result<(AssuredReading, u64), String>>>,
    next_at: Instant,
    latest: Option<AssuredReading>,
}

impl AssuredWalker {
    pub fn new(client: &HelperClient) -> Self {
        Self {
            client: client.in_lane(Lane::Reads),
            walk: None,
            next_at: Instant::now(),
            latest: None,
        }
    }

    /// The newest reading; collects a finished walk and starts the next one when it is due.
    pub async fn poll(&mut self) -> Option<AssuredReading> {
        if self.walk.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(walk) = self.walk.take()
        {
            let delay = match walk.await {
                Ok(Ok((reading, walk_ms))) => {
                    self.latest = Some(reading);
                    next_walk_after(walk_ms)
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "no walk of the table for the assured entries");
                    WALK_EVERY
                }
                Err(error) => {
                    tracing::warn!(%error, "the walk for the assured entries failed");
                    WALK_EVERY
                }
            };
            self.next_at = Instant::now() + delay;
        }
        if self.walk.is_none() && Instant::now() >= self.next_at {
            let client = self.client.clone();
            self.walk = Some(tokio::spawn(async move { walk(&client).await }));
        }
        self.latest
    }
}

async fn walk(client: &HelperClient) -> Result<(AssuredReading, u64), String> {
    match client.call(Request::Snapshot {}).await {
        Ok(Response::Snapshot { snapshot }) => Ok((
            AssuredReading {
                at_ms: snapshot.taken_unix_ms,
                assured: snapshot.total.assured,
                entries: snapshot.total.entries,
                walk_ms: snapshot.walk_ms,
            },
            snapshot.walk_ms,
        )),
        Ok(other) => Err(format!("unexpected answer: {other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_waits_half_a_minute_or_twenty_times_the_last_walk() {
        assert_eq!(next_walk_after(0), WALK_EVERY);
        assert_eq!(next_walk_after(663), WALK_EVERY, "262,144 entries");
        // 4 M entries walk in about 10 s: every 200 s, 5 % of a CPU.
        assert_eq!(next_walk_after(10_000), Duration::from_secs(200));
    }
}
