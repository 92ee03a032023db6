//! The one task that reads the helper on a fixed interval and publishes the newest sample to every
//! viewer: however many dashboards are open, the helper is asked once per interval.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctguard_app::live::LiveSample;
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

use crate::helper_client::HelperClient;

/// Starts the sampler; it runs until the returned handle is aborted or every receiver is dropped.
pub fn spawn(
    client: HelperClient,
    interval: Duration,
) -> (watch::Receiver<LiveSample>, JoinHandle<()>) {
    let (sender, receiver) = watch::channel(LiveSample::Starting);
    let task = tokio::spawn(run(client, interval, sender));
    (receiver, task)
}

async fn run(client: HelperClient, interval: Duration, sender: watch::Sender<LiveSample>) {
    let mut ticker = tokio::time::interval(interval);
    // A slow helper must not cause a burst of catch-up reads when it recovers.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let at_ms = now_ms();
        let previous = sender.borrow().clone();
        let next = match client.status().await {
            Ok(status) => {
                if matches!(previous, LiveSample::HelperDown { .. }) {
                    tracing::info!("helper reachable again");
                }
                LiveSample::Up { at_ms, status }
            }
            Err(error) => {
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
