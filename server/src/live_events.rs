//! `GET /api/live`: the sampler's output as server-sent events, one JSON `LiveSample` per event.
//! A stream lives only as long as its login (logout, an admin, a user change or expiry end it
//! within [`RECHECK_EVERY`]), and a login holds at most [`STREAMS_PER_LOGIN`] at once.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use ctguard_app::dashboard::live::{SIGNED_OUT_EVENT, ssr::LiveFeed};
use futures::StreamExt;
use tokio_stream::wrappers::WatchStream;

use crate::auth::authenticate::{Authenticator, SessionLogin};

/// How often an open stream asks whether its login still holds: a login that ends closes its
/// streams within this (the issue asks for 15 s). Also the keep-alive interval, so a browser that
/// went away without a word frees its slot as soon.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// Open streams one login may hold: a few tabs of the dashboard, not a flood of connections that
/// each cost the server a task and a socket.
pub const STREAMS_PER_LOGIN: usize = 4;

/// The open streams per login, and the rules their logins are checked against.
#[derive(Debug, Clone)]
pub struct LiveStreams {
    open: Arc<Mutex<HashMap<String, usize>>>,
    authenticator: Authenticator,
}

impl LiveStreams {
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            open: Arc::default(),
            authenticator,
        }
    }

    /// A slot for one more stream of `login`, or `None` at the cap.
    fn admit(&self, login: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(login.to_owned()).or_default();
        if *count >= STREAMS_PER_LOGIN {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            open: Arc::clone(&self.open),
            login: login.to_owned(),
        })
    }

    /// Resolves once the login no longer holds, as seen every [`RECHECK_EVERY`]; sets `ended`
    /// first.
    async fn login_ended(self, login: String, ended: Arc<AtomicBool>) {
        let mut ticks = tokio::time::interval(RECHECK_EVERY);
        ticks.tick().await; // the first tick is now; the request was just authenticated
        loop {
            ticks.tick().await;
            if !self.authenticator.still_signed_in(&login).await {
                tracing::info!("live stream closed: its login ended");
                ended.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// One open stream's place in its login's count, given back when the stream is dropped (the
/// browser went away, or the login ended).
#[derive(Debug)]
struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    login: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.login) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.login);
            }
        }
    }
}

/// Each subscriber gets the newest sample at once, then every new one. A slow browser skips
/// samples rather than queueing them: a watch channel holds only the newest. An open stream does
/// not count as activity: an unattended tab must not keep its session alive for ever.
pub async fn live_events(
    State(feed): State<LiveFeed>,
    State(streams): State<LiveStreams>,
    login: Option<Extension<SessionLogin>>,
) -> Response {
    // The route table lets only signed-in users here; without a login there is nothing to end it.
    let Some(Extension(SessionLogin(login))) = login else {
        return (StatusCode::UNAUTHORIZED, "Sign in first.").into_response();
    };
    let Some(slot) = streams.admit(&login) else {
        tracing::warn!(
            limit = STREAMS_PER_LOGIN,
            "live stream refused: too many open for one login"
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many live views open for this session.",
        )
            .into_response();
    };
    let login_ended = Arc::new(AtomicBool::new(false));
    let ended = streams.login_ended(login, Arc::clone(&login_ended));
    let events = WatchStream::new(feed.0)
        .map(move |sample| {
            // The slot lives in the stream: dropped with it, whichever way it ends.
            let _slot = &slot;
            match serde_json::to_string(&sample) {
                Ok(json) => Some(Ok::<_, Infallible>(Event::default().data(json))),
                Err(error) => {
                    tracing::error!(%error, "cannot serialise a live sample");
                    None
                }
            }
        })
        .take_until(Box::pin(ended))
        // The last word when the login ended (not when the server shuts down): the page reloads,
        // which takes the browser to the login page rather than leaving it on stale numbers.
        .chain(futures::stream::once(async move {
            login_ended
                .load(Ordering::SeqCst)
                .then(|| Ok(Event::default().event(SIGNED_OUT_EVENT).data("")))
        }))
        .filter_map(futures::future::ready);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(RECHECK_EVERY))
        .into_response()
}
