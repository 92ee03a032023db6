//! Assembling the application: database, services, sampler, router and its layers; and running it
//! until a signal.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Router,
    extract::FromRef,
    middleware,
    routing::{get, post},
};
use ctguard_app::{
    App,
    audit::{AUDIT_CSV_PATH, ssr::SharedAuditLog},
    live::{LIVE_EVENTS_PATH, ssr::LiveFeed},
    session::{LOGOUT_PATH, SIGN_IN_PATH},
    shell,
    users::ssr::SharedAccountAdmin,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::{net::TcpListener, task::JoinHandle};
use tower_sessions::{
    Expiry, SessionManagerLayer, cookie::SameSite, session_store::ExpiredDeletion,
};
use tower_sessions_sqlx_store::SqliteStore;

use crate::{
    account_admin::AccountAdministration,
    audit::AuditStore,
    audit_export::{AuditExport, audit_csv},
    audit_log::AuditReader,
    auth::{
        authenticate::{Authenticator, authenticate},
        authorize::authorize,
        login::{LoginService, sign_in, sign_out},
        origin::{PublicOrigins, same_origin_only},
        throttle::LoginThrottle,
    },
    client::TrustedProxy,
    clock::{SharedClock, SystemClock},
    configuration::Settings,
    confirmation::Confirmations,
    db,
    hashing::PasswordHasher,
    helper_client::HelperClient,
    live_events::live_events,
    logins::LoginStore,
    sampler, security_headers,
    users::UserStore,
};

/// Everything a request handler may need.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub feed: LiveFeed,
    pub login: LoginService,
    pub audit_export: AuditExport,
}

/// A built, bound, not yet serving application. Tests bind port 0 and read [`Self::local_addr`].
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Self::build`], with the clock sessions and throttling use (tests move it by hand).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let pool = db::open(&settings.database).await?;
        let session_store = SqliteStore::new(pool.clone());
        session_store.migrate().await?;

        let listener = TcpListener::bind(settings.listen).await?;
        let local_addr = listener.local_addr()?;
        let (feed, sampler) = sampler::spawn(
            HelperClient::new(settings.helper.clone()),
            settings.sample_interval,
        );
        let expired_sessions = tokio::spawn(async move {
            if let Err(error) = session_store
                .clone()
                .continuously_delete_expired(tokio::time::Duration::from_secs(300))
                .await
            {
                tracing::error!(%error, "expired-session sweeper stopped");
            }
        });

        let users = UserStore::new(pool.clone());
        let logins = LoginStore::new(pool.clone());
        let audit = AuditStore::new(pool.clone());
        let hasher = PasswordHasher::new()?;
        let login = LoginService {
            users: users.clone(),
            logins: logins.clone(),
            hasher: hasher.clone(),
            throttle: Arc::new(LoginThrottle::default()),
            audit: audit.clone(),
            clock: clock.clone(),
        };
        let audit_log: SharedAuditLog = Arc::new(AuditReader {
            audit: audit.clone(),
        });
        let audit_export = AuditExport {
            audit: audit.clone(),
            clock: clock.clone(),
        };
        let account_admin: SharedAccountAdmin = Arc::new(AccountAdministration {
            users,
            logins: logins.clone(),
            hasher,
            audit,
            clock: clock.clone(),
            confirmations: Arc::new(Confirmations::new(clock.clone())),
        });
        let state = AppState {
            leptos_options: settings.leptos_options(local_addr),
            feed: LiveFeed(feed),
            login,
            audit_export,
        };
        let authenticator = Authenticator {
            logins,
            clock,
            policy: settings.session,
        };

        let sessions = SessionManagerLayer::new(SqliteStore::new(pool))
            .with_name(settings.session.cookie_name())
            .with_http_only(true)
            .with_same_site(SameSite::Strict)
            .with_secure(settings.session.secure_cookies)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
                i64::try_from(settings.session.idle.as_secs()).unwrap_or(i64::MAX),
            )));

        let router = routes(state, account_admin, audit_log)
            .layer(middleware::from_fn(authorize))
            .layer(middleware::from_fn_with_state(authenticator, authenticate))
            .layer(sessions)
            .layer(middleware::from_fn_with_state(
                PublicOrigins(settings.public_origins(local_addr).into()),
                same_origin_only,
            ))
            .layer(Extension(TrustedProxy(settings.trusted_proxy)));
        let router = security_headers::apply(router);

        Ok(Self {
            listener,
            local_addr,
            router,
            background: vec![sampler, expired_sessions],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        for task in self.background {
            task.abort();
        }
        Ok(())
    }
}

fn routes(state: AppState, account_admin: SharedAccountAdmin, audit_log: SharedAuditLog) -> Router {
    let routes = generate_route_list(App);
    let feed = state.feed.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .route(LIVE_EVENTS_PATH, get(live_events))
        .route(SIGN_IN_PATH, post(sign_in))
        .route(LOGOUT_PATH, post(sign_out))
        .route(AUDIT_CSV_PATH, get(audit_csv))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(feed.clone());
                provide_context(account_admin.clone());
                provide_context(audit_log.clone());
            },
            move || shell(options.clone()),
        )
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
