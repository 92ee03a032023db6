//! Assembling the application: the listener, the sampler, the router; and running it until a signal.

use std::net::SocketAddr;

use axum::{Router, extract::FromRef, routing::get};
use ctguard_app::{
    App,
    history::History,
    live::{LIVE_EVENTS_PATH, ssr::LiveFeed},
    seed::ssr::SharedHistory,
    shell,
    thresholds::Thresholds,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    configuration::Settings,
    helper_client::HelperClient,
    history_store::HistoryStore,
    live_events::live_events,
    metrics::{METRICS_PATH, metrics},
    sampler,
};

/// Everything a request handler may need.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub feed: LiveFeed,
    pub history: SharedHistory,
    pub thresholds: Thresholds,
}

/// A built, bound, not yet serving application. Tests bind port 0 and read [`Self::local_addr`].
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    sampler: JoinHandle<()>,
    saver: JoinHandle<()>,
    store: HistoryStore,
    history: SharedHistory,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen).await?;
        let local_addr = listener.local_addr()?;
        let store = HistoryStore::in_dir(&settings.state_dir);
        let minutes = store.load().unwrap_or_else(|error| {
            tracing::warn!(%error, "starting with an empty history");
            Vec::new()
        });
        let history = SharedHistory::new(History::from_minutes(minutes, sampler::now_ms()));
        let (feed, sampler) = sampler::spawn(
            HelperClient::new(settings.helper.clone()),
            settings.sample_interval,
            history.clone(),
        );
        let saver = store
            .clone()
            .spawn_saver(history.clone(), settings.history_save_interval);
        let state = AppState {
            leptos_options: settings.leptos_options(local_addr),
            feed: LiveFeed(feed),
            history: history.clone(),
            thresholds: settings.thresholds,
        };
        Ok(Self {
            listener,
            local_addr,
            router: router(state),
            sampler,
            saver,
            store,
            history,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Stopping the sampler drops the live feed's sender, which ends every open SSE stream:
        // otherwise the graceful shutdown would wait for browsers that never hang up.
        let sampler = self.sampler.abort_handle();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                sampler.abort();
            })
            .await?;
        self.sampler.abort();
        self.saver.abort();
        // The last minutes since the periodic save.
        self.store.save_logged(&self.history).await;
        Ok(())
    }
}

fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let feed = state.feed.clone();
    let history = state.history.clone();
    let thresholds = state.thresholds;
    let options = state.leptos_options.clone();
    let provide = move || {
        provide_context(feed.clone());
        provide_context(history.clone());
        provide_context(thresholds);
    };
    Router::new()
        .route(LIVE_EVENTS_PATH, get(live_events))
        .route(METRICS_PATH, get(metrics))
        .leptos_routes_with_context(&state, routes, provide, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
