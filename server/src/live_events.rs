//! `GET /api/live`: the sampler's output as server-sent events, one JSON `LiveSample` per event.

use std::convert::Infallible;

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use ctguard_app::live::ssr::LiveFeed;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;

/// Each subscriber gets the newest sample at once, then every new one. A slow browser skips
/// samples rather than queueing them: a watch channel holds only the newest.
pub async fn live_events(
    State(feed): State<LiveFeed>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = WatchStream::new(feed.0).filter_map(|sample| async move {
        match serde_json::to_string(&sample) {
            Ok(json) => Some(Ok(Event::default().data(json))),
            Err(error) => {
                tracing::error!(%error, "cannot serialise a live sample");
                None
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
