//! The live reading of the table that the server's sampler publishes: its type, the server function
//! that returns the latest one for the first render, and (in the browser) the server-sent-event
//! subscription that keeps it current.

use ctguard_protocol::{ConntrackStats, ConntrackStatus, HelperHealth, KernelLogSummary};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The path of the server-sent-event stream of [`LiveSample`]s.
pub const LIVE_EVENTS_PATH: &str = "/api/live";

/// The name of the stream's last event when its login has ended (signed out, disabled, expired):
/// the page reloads, and the server sends a signed-out browser to the login page and back.
pub const SIGNED_OUT_EVENT: &str = "signed_out";

/// What the dashboard shows: the newest reading, or why there is none.
///
/// Externally tagged (`"starting"`, `{"up": {...}}`), not internally: serde reads an internally
/// tagged enum through a buffered copy of the whole value, and that machinery alone was about
/// 15 KB of the first wasm bundle (BENCHMARKS.md, "Release wasm size").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// `allow`, not `expect`: on wasm32 the sizes differ and the lint may not fire there.
#[allow(
    clippy::large_enum_variant,
    reason = "one sample a second, nearly always `Up`: boxing it would save nothing"
)]
pub enum LiveSample {
    /// The server has not asked the helper yet.
    Starting,
    Up {
        /// When the helper was read, in milliseconds since the Unix epoch.
        at_ms: u64,
        status: ConntrackStatus,
        /// The newest count of `table full` messages in the kernel log, read less often than the
        /// status; `None` until first read or while the helper cannot read the log.
        #[serde(default)]
        kernel_log: Option<KernelLogSummary>,
        /// The helper's own state (blocks in force, journal write failures), read with the status.
        #[serde(default)]
        helper: HelperHealth,
        /// The kernel's counters as totals that never go down: their increases since the server
        /// started, taken per CPU across 32-bit wraps, a reset told by the table's identity
        /// (the server's sampler keeps them). Rates and `/metrics` come from these, never from
        /// `status.stats`, whose sum over CPUs falls when one CPU's counter wraps.
        #[serde(default)]
        counters: ConntrackStats,
        /// The table's assured entries at the newest walk the sampler asked for (every half
        /// minute or less often: a walk costs what a dump of the table costs); `None` until one
        /// has been made, or from a server that does not walk.
        #[serde(default)]
        assured: Option<AssuredReading>,
        /// The biggest creator of new entries by source over the last minute, from the helper's
        /// counters (read every 10 s, like the kernel log); `None` while the helper does not
        /// count or nothing was created.
        #[serde(default)]
        top_creator: Option<TopCreator>,
        /// The source conntrack turned away most over the last minute (its table full), from
        /// the same answer; `None` while nobody was, or the helper does not count.
        #[serde(default)]
        top_turned_away: Option<TopTurnedAway>,
    },
    HelperDown {
        at_ms: u64,
        /// When the outage began.
        since_ms: u64,
        cause: HelperOutage,
    },
}

/// The assured entries of the table at one walk of it: entries that have seen traffic both ways
/// (TCP past its handshake, UDP answered and kept going), which the kernel never evicts to make
/// room for a new one (`early_drop_list` skips `IPS_ASSURED`). The kernel keeps no count of them:
/// only a walk of the table (the `snapshot` request) tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssuredReading {
    /// When the walk was made, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Assured entries the walk saw.
    pub assured: u64,
    /// Every entry the walk saw (the count moves on while it walks).
    pub entries: u64,
    /// How long the walk took, in milliseconds (what the next one will roughly take).
    #[serde(default)]
    pub walk_ms: u64,
}

impl AssuredReading {
    /// The assured entries in percent of the limit (0 when the limit is unknown).
    pub fn percent_of(&self, max: u64) -> f64 {
        if max == 0 {
            0.0
        } else {
            self.assured as f64 * 100.0 / max as f64
        }
    }
}

/// The source creating new entries fastest (issue 15), for the dashboard's incident banner. The
/// address goes as text: the dashboard only shows it, and parsing addresses would grow the first
/// wasm bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopCreator {
    pub address: String,
    /// New entries per second over the last minute, rounded down.
    pub per_second: u64,
}

/// The source conntrack turned away most over the last minute (issue 15), for the dashboard's
/// incident banner; the address as text, as [`TopCreator`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopTurnedAway {
    pub address: String,
    /// Packets refused over the last minute.
    pub packets: u64,
    /// Those packets per second, rounded down.
    pub per_second: u64,
}

/// Why the helper could not be read, in terms an operator can act on. Deliberately coarse: the
/// details stay in the server's log, never in a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperOutage {
    /// Nothing listens on the helper's socket.
    Unreachable,
    /// The helper answered but refused this server (peer not allowed, version mismatch).
    Refused,
    /// The helper did not answer in time.
    NotResponding,
    /// The helper could not read the kernel's counters.
    KernelUnreadable,
}

impl HelperOutage {
    pub fn explain(self) -> &'static str {
        match self {
            Self::Unreachable => {
                "The privileged helper is not running or its socket cannot be reached."
            }
            Self::Refused => {
                "The privileged helper refused this server (check its allowed users and versions)."
            }
            Self::NotResponding => "The privileged helper is not answering in time.",
            Self::KernelUnreadable => "The helper cannot read the kernel's conntrack counters.",
        }
    }
}

/// The newest sample, for the first server-side render; the browser then follows the live stream.
#[server]
pub async fn latest_sample() -> Result<LiveSample, ServerFnError> {
    let feed = expect_context::<ssr::LiveFeed>();
    Ok(feed.latest())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side of the live feed, handed to the UI as context.

    use tokio::sync::watch;

    use super::LiveSample;

    /// A handle on the sampler's output; cloning it is cheap.
    #[derive(Debug, Clone)]
    pub struct LiveFeed(pub watch::Receiver<LiveSample>);

    impl LiveFeed {
        pub fn latest(&self) -> LiveSample {
            self.0.borrow().clone()
        }
    }
}

/// Keeps `target` set to the newest sample from the server-sent-event stream, for as long as the
/// calling component lives. The browser's `EventSource` reconnects by itself after a server
/// restart; when the server says the login ended, the page reloads (to the login page). Does
/// nothing during server-side rendering.
pub fn follow_live_samples(target: RwSignal<Option<LiveSample>>) {
    #[cfg(feature = "hydrate")]
    browser::follow(target);
    #[cfg(not(feature = "hydrate"))]
    let _ = target;
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{EventSource, MessageEvent};

    use super::{LIVE_EVENTS_PATH, LiveSample, SIGNED_OUT_EVENT};

    pub(super) fn follow(target: RwSignal<Option<LiveSample>>) {
        let source = match EventSource::new(LIVE_EVENTS_PATH) {
            Ok(source) => source,
            Err(error) => {
                leptos::logging::warn!("live updates unavailable: {error:?}");
                return;
            }
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<LiveSample>(&text) {
                Ok(sample) => target.set(Some(sample)),
                Err(error) => leptos::logging::warn!("unreadable live sample: {error}"),
            }
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let closing = source.clone();
        let on_signed_out = Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| {
            // Not reconnecting: the server would refuse it. The reload lands on the login page.
            closing.close();
            if let Err(error) = window().location().reload() {
                leptos::logging::warn!("cannot reload after signing out: {error:?}");
            }
        });
        if let Err(error) = source.add_event_listener_with_callback(
            SIGNED_OUT_EVENT,
            on_signed_out.as_ref().unchecked_ref(),
        ) {
            leptos::logging::warn!("cannot follow the end of the session: {error:?}");
        }
        // The EventSource and its callbacks live as long as the component; all are browser objects
        // that are not Send, hence the wrapper (the UI runs on one thread).
        let guard = SendWrapper::new((source, on_message, on_signed_out));
        on_cleanup(move || guard.0.close());
    }
}
