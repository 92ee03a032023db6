//! The one task that reads the helper on a fixed interval and publishes the newest sample to every
//! viewer: however many dashboards are open, the helper is asked once per interval (and for the
//! kernel log once every [`KERNEL_LOG_EVERY`] intervals, and for a walk of the table, for its
//! assured entries, every half minute or less often: `assured`). Each reading also extends the
//! history, and its per-CPU counters the totals that never go down (`counters`).

pub mod assured;
pub mod counters;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctguard_app::{live::LiveSample, seed::ssr::SharedHistory, trend::Point};
use ctguard_protocol::KernelLogSummary;
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

use self::{assured::AssuredWalker, counters::CounterTracker};
use crate::helper_client::HelperClient;

/// The kernel log is read once per this many status readings: walking it costs more than the
/// procfs counters, and its counts cover minutes anyway.
pub const KERNEL_LOG_EVERY: u64 = 10;

/// Starts the sampler; it runs until the returned handle is aborted or every receiver is dropped.
pub fn spawn(
    client: HelperClient,
    interval: Duration,
    history: SharedHistory,
) -> (watch::Receiver<LiveSample>, JoinHandle<()>) {
    let (sender, receiver) = watch::channel(LiveSample::Starting);
    let task = tokio::spawn(run(client, interval, sender, history));
    (receiver, task)
}

async fn run(
    client: HelperClient,
    interval: Duration,
    sender: watch::Sender<LiveSample>,
    history: SharedHistory,
) {
    let mut ticker = tokio::time::interval(interval);
    // A slow helper must not cause a burst of catch-up reads when it recovers.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut kernel_log: Option<KernelLogSummary> = None;
    let mut readings: u64 = 0;
    // Kept across helper outages and restarts: the kernel's counters go on meanwhile.
    let mut tracker = CounterTracker::default();
    let mut walker = AssuredWalker::new(&client);
    loop {
        ticker.tick().await;
        let at_ms = now_ms();
        let previous = sender.borrow().clone();
        let next = match client.status().await {
            Ok((status, helper)) => {
                if matches!(previous, LiveSample::HelperDown { .. }) {
                    tracing::info!("helper reachable again");
                }
                if readings.is_multiple_of(KERNEL_LOG_EVERY) {
                    kernel_log = match client.kernel_log().await {
                        Ok(log) => Some(log),
                        Err(error) => {
                            tracing::debug!(%error, "kernel log unavailable");
                            None
                        }
                    };
                }
                readings += 1;
                let (counters, _) = tracker.observe(&status);
                history.push(Point::from_sample(at_ms, &status, &counters));
                LiveSample::Up {
                    at_ms,
                    status,
                    kernel_log,
                    helper,
                    counters,
                    assured: walker.poll().await,
                }
            }
            Err(error) => {
                // Read the kernel log again as soon as the helper is back.
                readings = 0;
                let since_ms = match previous {
                    LiveSample::HelperDown { since_ms, .. } => since_ms,
                    _ => {
                        tracing::warn!(%error, "helper unavailable");
                        at_ms
                    }
                };
                LiveSample::HelperDown {
                    at_ms,
                    since_ms,
                    cause: error.outage(),
                }
            }
        };
        if sender.send(next).is_err() {
            tracing::info!("no more viewers of the live feed; sampler stops");
            return;
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
