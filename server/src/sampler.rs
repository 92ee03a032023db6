//! The one task that reads the helper on a fixed interval and publishes the newest sample to every
//! viewer: however many dashboards are open, the helper is asked once per interval (and for the
//! kernel log and the creators of new entries once every [`KERNEL_LOG_EVERY`] intervals, and for
//! a walk of the table, for its assured entries, every half minute or less often: `assured`).
//! Each reading also extends the history, and its per-CPU counters the totals that never go down
//! (`counters`). The creators go to `/metrics` through a channel of their own (browsers get only
//! the top one, in the sample).

pub mod assured;
pub mod counters;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ctguard_app::{
    dashboard::live::{LiveSample, TopCreator, TopTurnedAway},
    dashboard::ssr::SharedHistory,
    dashboard::trend::Point,
    operators::creators::{CreatorsView, top_source, top_turned_away},
};
use ctguard_protocol::{Creators, KernelLogSummary};
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

use self::{assured::AssuredWalker, counters::CounterTracker};
use crate::helper_client::HelperClient;

/// The kernel log is read once per this many status readings: walking it costs more than the
/// procfs counters, and its counts cover minutes anyway. The creators too: the helper reads its
/// counters every 10 s, so asking more often would get the same answer.
pub const KERNEL_LOG_EVERY: u64 = 10;

/// The newest creators answer of a helper that counts; `None` while it does not, or is down.
pub type CreatorsReceiver = watch::Receiver<Option<Arc<Creators>>>;

/// Starts the sampler; it runs until the returned handle is aborted or every receiver is dropped.
/// It asks for `creators_limit` creators per key (at least 1, for the dashboard's top one).
pub fn spawn(
    client: HelperClient,
    interval: Duration,
    history: SharedHistory,
    creators_limit: u16,
) -> (
    watch::Receiver<LiveSample>,
    CreatorsReceiver,
    JoinHandle<()>,
) {
    let (sender, receiver) = watch::channel(LiveSample::Starting);
    let (creators_sender, creators) = watch::channel(None);
    let task = tokio::spawn(run(
        client,
        interval,
        (sender, creators_sender),
        history,
        creators_limit.max(1),
    ));
    (receiver, creators, task)
}

async fn run(
    client: HelperClient,
    interval: Duration,
    (sender, creators_sender): (
        watch::Sender<LiveSample>,
        watch::Sender<Option<Arc<Creators>>>,
    ),
    history: SharedHistory,
    creators_limit: u16,
) {
    let mut ticker = tokio::time::interval(interval);
    // A slow helper must not cause a burst of catch-up reads when it recovers.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut kernel_log: Option<KernelLogSummary> = None;
    let mut top_creator: Option<TopCreator> = None;
    let mut turned_away: Option<TopTurnedAway> = None;
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
                    let creators = read_creators(&client, creators_limit).await;
                    top_creator = creators.as_deref().and_then(|creators| {
                        top_source(creators).map(|(top, per_second)| TopCreator {
                            address: top.address.to_string(),
                            per_second,
                        })
                    });
                    turned_away = creators.as_deref().and_then(|creators| {
                        top_turned_away(creators).map(|(top, per_second)| TopTurnedAway {
                            address: top.address.to_string(),
                            packets: top.packets,
                            per_second,
                        })
                    });
                    creators_sender.send_replace(creators);
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
                    top_creator: top_creator.clone(),
                    top_turned_away: turned_away.clone(),
                }
            }
            Err(error) => {
                // Read the kernel log (and the creators) again as soon as the helper is back.
                readings = 0;
                top_creator = None;
                turned_away = None;
                creators_sender.send_replace(None);
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

/// The helper's creators while it counts them; `None` (logged at debug: an older helper refuses
/// every time) otherwise.
async fn read_creators(client: &HelperClient, limit: u16) -> Option<Arc<Creators>> {
    match crate::creators::ask(client, limit).await {
        Ok(CreatorsView::Available { creators }) => Some(Arc::new(creators)),
        Ok(CreatorsView::Unavailable { reason }) => {
            tracing::debug!(?reason, "creators unavailable");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "creators unavailable");
            None
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
