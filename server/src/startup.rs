//! Assembling the application: database, services, sampler, history, router and its layers; and
//! running it until a signal (or, in tests, until a future of their own).

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use axum::{
    Extension, Router,
    extract::FromRef,
    http::Method,
    middleware,
    routing::{MethodRouter, get, post},
};
use ctguard_app::{
    App,
    account::ssr::SharedOwnAccount,
    admin::audit::{AUDIT_CSV_PATH, ssr::SharedAuditLog},
    admin::users::ssr::SharedAccountAdmin,
    dashboard::history::History,
    dashboard::live::{LIVE_EVENTS_PATH, ssr::LiveFeed},
    dashboard::ssr::SharedHistory,
    dashboard::thresholds::Thresholds,
    operators::operations::ssr::SharedTableOperations,
    operators::tuning::ssr::SharedSettingsSource,
    session::{LOGOUT_PATH, SECOND_FACTOR_PATH, SIGN_IN_PATH},
    shell,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use tokio::{net::TcpListener, task::JoinHandle};
use tower_http::{services::ServeDir, trace::TraceLayer};
use tower_sessions::{
    Expiry, SessionManagerLayer, cookie::SameSite, session_store::ExpiredDeletion,
};
use tower_sessions_sqlx_store::SqliteStore;

use crate::{
    account_admin::AccountAdministration,
    audit::{AuditStore, retention::Retention},
    audit_export::{AuditExport, audit_csv},
    audit_log::AuditReader,
    auth::{
        authenticate::{Authenticator, authenticate},
        authorize::{RefusalAudit, authorize},
        login::{LoginService, second_factor, sign_in, sign_out},
        next_page::PanelPages,
        origin::{PublicOrigins, same_origin_only},
        own_account::OwnAccounts,
        request_path::refuse_ambiguous_paths,
        second_factor::SecondFactorStore,
        throttle::LoginThrottle,
    },
    client_info::TrustedProxy,
    clock::{SharedClock, SystemClock},
    configuration::{HelperSettings, Settings},
    confirmation::Confirmations,
    creators::{CREATORS_PATH, CreatorsApi, creators},
    db,
    devices::DeviceStore,
    hashing::PasswordHasher,
    helper_client::{HelperClient, HelperLanes, Lane},
    history_store::HistoryStore,
    live_events::{LiveStreams, live_events},
    logins::LoginStore,
    metrics::{CreatorsMetrics, METRICS_PATH, MetricsAccess, metrics},
    sampler, security_headers,
    table_operations::TableOperator,
    users::UserStore,
};

/// Everything a request handler may need.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub feed: LiveFeed,
    pub history: SharedHistory,
    pub thresholds: Thresholds,
    pub login: LoginService,
    pub audit_export: AuditExport,
    pub metrics_access: MetricsAccess,
    pub creators_metrics: CreatorsMetrics,
    pub creators_api: CreatorsApi,
    pub live_streams: LiveStreams,
}

/// A built, bound, not yet serving application. Tests bind port 0 and read [`Self::local_addr`].
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    sampler: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    store: HistoryStore,
    history: SharedHistory,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Self::build`], with the clock sessions and throttling use (tests move it by hand).
    /// In four parts: the live side, sign-in, the operations, and the layers around the routes.
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let pool = db::open(&settings.database).await?;
        let session_store = SqliteStore::new(pool.clone());
        session_store.migrate().await?;
        let listener = TcpListener::bind(settings.listen).await?;
        let local_addr = listener.local_addr()?;

        let lanes = HelperLanes::new();
        let live = Live::start(&settings, &lanes);
        let audit = AuditStore::new(pool.clone());
        let retention = Retention::in_state_dir(
            audit.clone(),
            &settings.state_dir,
            settings.audit_retention_days,
        )
        .spawn(clock.clone());
        let confirmations = Arc::new(Confirmations::new(
            clock.clone(),
            i64::try_from(settings.confirmation_lifetime.as_secs()).unwrap_or(i64::MAX),
        ));
        let staff = Staff::new(&settings, &pool, &audit, &clock, &confirmations)?;
        let (services, audit_log_export) = operations(
            &settings,
            lanes,
            &audit,
            &clock,
            confirmations,
            staff.own_account.clone(),
            staff.account_admin.clone(),
        );
        let expired_sessions = tokio::spawn(async move {
            if let Err(error) = session_store
                .continuously_delete_expired(tokio::time::Duration::from_secs(300))
                .await
            {
                tracing::error!(%error, "expired-session sweeper stopped");
            }
        });

        let state = AppState {
            leptos_options: settings.leptos_options(local_addr),
            feed: LiveFeed(live.feed),
            history: live.history.clone(),
            thresholds: settings.thresholds,
            login: staff.login,
            audit_export: audit_log_export,
            metrics_access: MetricsAccess(settings.metrics_token.clone().map(Arc::new)),
            creators_metrics: CreatorsMetrics {
                feed: live.creators_feed,
                top: settings.metrics_top_creators,
            },
            creators_api: live.creators_api,
            live_streams: LiveStreams::new(staff.authenticator.clone()),
        };
        let refusals = RefusalAudit {
            audit,
            clock: clock.clone(),
        };
        let router = layers(
            routes(state, services),
            &settings,
            local_addr,
            pool,
            refusals,
            staff.authenticator,
        );

        Ok(Self {
            listener,
            local_addr,
            router,
            sampler: live.sampler,
            background: [live.saver, expired_sessions, staff.login_sweeper]
                .into_iter()
                .chain(retention)
                .collect(),
            store: live.store,
            history: live.history,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then shuts down as after a signal. For tests: the
    /// signal handlers of [`Self::run_until_stopped`] are process-wide, and once installed
    /// SIGTERM and SIGINT no longer end the process, so a test binary that hung could not be
    /// stopped by `timeout` or Ctrl-C.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Stopping the sampler drops the live feed's sender, which ends every open SSE stream:
        // otherwise the graceful shutdown would wait for browsers that never hang up.
        let sampler = self.sampler.abort_handle();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                sampler.abort();
            })
            .await?;
        self.sampler.abort();
        for task in self.background {
            task.abort();
        }
        // The last minutes since the periodic save.
        self.store.save_logged(&self.history).await;
        Ok(())
    }
}

/// The live side: the minute history (loaded from the state dir, saved periodically), the
/// sampler that fills it and the live and creators feeds, and the creators API.
struct Live {
    store: HistoryStore,
    history: SharedHistory,
    feed: tokio::sync::watch::Receiver<ctguard_app::dashboard::live::LiveSample>,
    creators_feed: sampler::CreatorsReceiver,
    creators_api: CreatorsApi,
    sampler: JoinHandle<()>,
    saver: JoinHandle<()>,
}

impl Live {
    fn start(settings: &Settings, lanes: &Arc<HelperLanes>) -> Self {
        let store = HistoryStore::in_dir(&settings.state_dir);
        let minutes = store.load().unwrap_or_else(|error| {
            tracing::warn!(%error, "starting with an empty history");
            Vec::new()
        });
        let history = SharedHistory::new(History::from_minutes(minutes, sampler::now_ms()));
        let (feed, creators_feed, sampler) = sampler::spawn(
            HelperClient::new(settings.helper.clone(), lanes.clone(), Lane::Sampler),
            settings.sample_interval,
            history.clone(),
            settings.metrics_top_creators,
        );
        // The helper answers creators from memory: a status read's deadline, in the reads lane.
        let creators_api = CreatorsApi {
            helper: HelperClient::new(settings.helper.clone(), lanes.clone(), Lane::Reads),
        };
        let saver = store
            .clone()
            .spawn_saver(history.clone(), settings.history_save_interval);
        Self {
            store,
            history,
            feed,
            creators_feed,
            creators_api,
            sampler,
            saver,
        }
    }
}

/// Staff accounts: signing in (passwords, throttling, second factors, devices), each one's own
/// account, the admins' account administration, and the authenticator every request passes.
struct Staff {
    login: LoginService,
    own_account: SharedOwnAccount,
    account_admin: SharedAccountAdmin,
    authenticator: Authenticator,
    login_sweeper: JoinHandle<()>,
}

impl Staff {
    fn new(
        settings: &Settings,
        pool: &sqlx::SqlitePool,
        audit: &AuditStore,
        clock: &SharedClock,
        confirmations: &Arc<Confirmations>,
    ) -> anyhow::Result<Self> {
        let users = UserStore::new(pool.clone());
        let logins = LoginStore::new(pool.clone());
        let hasher = PasswordHasher::new()?;
        let throttle = Arc::new(LoginThrottle::new(clock.clone()));
        let second_factors = SecondFactorStore::new(pool.clone());
        let login = LoginService {
            users: users.clone(),
            logins: logins.clone(),
            hasher: hasher.clone(),
            throttle: throttle.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            pages: PanelPages::new(route_list().iter().map(|page| page.path().to_owned())),
            devices: DeviceStore::new(pool.clone(), settings.session.secure_cookies),
            second_factors: second_factors.clone(),
            policy: settings.session,
        };
        let own_account: SharedOwnAccount = Arc::new(OwnAccounts {
            users: users.clone(),
            logins: logins.clone(),
            hasher: hasher.clone(),
            throttle,
            second_factors,
            audit: audit.clone(),
            clock: clock.clone(),
            policy: settings.session,
        });
        let account_admin: SharedAccountAdmin = Arc::new(AccountAdministration {
            users,
            logins: logins.clone(),
            hasher,
            audit: audit.clone(),
            clock: clock.clone(),
            confirmations: confirmations.clone(),
            policy: settings.session,
        });
        let login_sweeper = logins
            .clone()
            .spawn_sweeper(clock.clone(), settings.session);
        let authenticator = Authenticator {
            logins,
            clock: clock.clone(),
            policy: settings.session,
        };
        Ok(Self {
            login,
            own_account,
            account_admin,
            authenticator,
            login_sweeper,
        })
    }
}

/// The operations on the table and the audit log, over the helper's slow lane (a table walk, an
/// nft transaction or a journal check takes longer than a status read), with the services the
/// server functions find in their context.
fn operations(
    settings: &Settings,
    lanes: Arc<HelperLanes>,
    audit: &AuditStore,
    clock: &SharedClock,
    confirmations: Arc<Confirmations>,
    own_account: SharedOwnAccount,
    account_admin: SharedAccountAdmin,
) -> (Services, AuditExport) {
    let slow_helper = HelperClient::new(
        HelperSettings {
            socket: settings.helper.socket.clone(),
            timeout: settings.helper.slow_timeout,
            slow_timeout: settings.helper.slow_timeout,
        },
        lanes,
        Lane::Reads,
    );
    let table_operator = Arc::new(TableOperator {
        helper: slow_helper.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        confirmations,
        expensive_reads: Arc::default(),
    });
    let audit_log: SharedAuditLog = Arc::new(AuditReader {
        audit: audit.clone(),
        helper: slow_helper,
    });
    let services = Services {
        account_admin,
        own_account,
        table_operations: table_operator.clone(),
        settings_source: table_operator,
        audit_log,
    };
    let export = AuditExport {
        audit: audit.clone(),
        clock: clock.clone(),
    };
    (services, export)
}

/// The layers around the routes, innermost first: who may (authorize), who is asking
/// (authenticate), the session, same-origin writes, the trusted proxy, the refusal of ambiguous
/// paths, one tracing span per request, and the security headers.
fn layers(
    router: Router,
    settings: &Settings,
    local_addr: SocketAddr,
    pool: sqlx::SqlitePool,
    refusals: RefusalAudit,
    authenticator: Authenticator,
) -> Router {
    let sessions = SessionManagerLayer::new(SqliteStore::new(pool))
        .with_name(settings.session.cookie_name())
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(settings.session.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            i64::try_from(settings.session.idle.as_secs()).unwrap_or(i64::MAX),
        )));
    let router = router
        .layer(middleware::from_fn_with_state(refusals, authorize))
        .layer(middleware::from_fn_with_state(authenticator, authenticate))
        .layer(sessions)
        .layer(middleware::from_fn_with_state(
            PublicOrigins(settings.public_origins(local_addr).into()),
            same_origin_only,
        ))
        .layer(Extension(TrustedProxy(settings.trusted_proxy)))
        // Outside everything else: no route, session or file sees an ambiguous path.
        .layer(middleware::from_fn(refuse_ambiguous_paths))
        // One span per request, around all of it: every line logged while handling it says
        // which request (the path without its query, which may carry a token). Failures are
        // logged where they happen, with what went wrong, not again here as bare statuses.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %request.uri().path()
                    )
                })
                .on_failure(()),
        );
    security_headers::apply(router, settings.session.secure_cookies)
}

/// What the server functions find in their context: one implementation per area.
struct Services {
    account_admin: SharedAccountAdmin,
    own_account: SharedOwnAccount,
    table_operations: SharedTableOperations,
    settings_source: SharedSettingsSource,
    audit_log: SharedAuditLog,
}

fn routes(state: AppState, services: Services) -> Router {
    let Services {
        account_admin,
        own_account,
        table_operations,
        settings_source,
        audit_log,
    } = services;
    let routes = route_list();
    let feed = state.feed.clone();
    let history = state.history.clone();
    let thresholds = state.thresholds;
    let options = state.leptos_options.clone();
    let provide = move || {
        provide_context(feed.clone());
        provide_context(history.clone());
        provide_context(thresholds);
        provide_context(account_admin.clone());
        provide_context(own_account.clone());
        provide_context(table_operations.clone());
        provide_context(settings_source.clone());
        provide_context(audit_log.clone());
    };
    let site = ServeDir::new(&*state.leptos_options.site_root)
        .precompressed_gzip()
        .precompressed_br();
    let mut router = Router::new();
    for (_, path, handler) in handler_routes() {
        router = router.route(path, handler);
    }
    router
        .leptos_routes_with_context(&state, routes, provide, move || shell(options.clone()))
        // Only the static files reach this (the route table refuses every other unrouted path):
        // the site's files, or a bare 404. Never the app rendered without its contexts.
        .fallback_service(site)
        .with_state(state)
}

/// The endpoints served by axum handlers of our own, beside the app's pages and server functions.
fn handler_routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, LIVE_EVENTS_PATH, get(live_events)),
        (Method::GET, METRICS_PATH, get(metrics)),
        (Method::GET, CREATORS_PATH, get(creators)),
        (Method::POST, SIGN_IN_PATH, post(sign_in)),
        (Method::POST, SECOND_FACTOR_PATH, post(second_factor)),
        (Method::POST, LOGOUT_PATH, post(sign_out)),
        (Method::GET, AUDIT_CSV_PATH, get(audit_csv)),
    ]
}

/// Every method and path the router serves: the handlers above, the app's pages and every
/// registered server function. Each needs a row in the route table (tested), which refuses the
/// rest.
pub fn registered_endpoints() -> Vec<(Method, String)> {
    let handlers = handler_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path.to_owned()));
    let pages = route_list().into_iter().flat_map(|page| {
        let path = page.path().to_owned();
        page.methods()
            .map(|method| (page_method(method), path.clone()))
            .collect::<Vec<_>>()
    });
    let server_functions =
        leptos::server_fn::axum::server_fn_paths().map(|(path, method)| (method, path.to_owned()));
    handlers.chain(pages).chain(server_functions).collect()
}

fn page_method(method: leptos_router::Method) -> Method {
    match method {
        leptos_router::Method::Get => Method::GET,
        leptos_router::Method::Post => Method::POST,
        leptos_router::Method::Put => Method::PUT,
        leptos_router::Method::Delete => Method::DELETE,
        leptos_router::Method::Patch => Method::PATCH,
    }
}

/// The app's routes, generated once per process.
///
/// Generating them renders the app with leptos's `SuppressResourceLoad` guard held, and that guard
/// sets a *process-wide* flag (a static in leptos_server 0.8, set by leptos_router's
/// `RouteList::generate`; leptos issue #4773): every `Resource` whose fetch is first polled while
/// it is set, on any thread and in any request, awaits `pending()` forever. A page rendered by an
/// application already serving in the same process at that moment stops after its `<Suspense>`
/// fallbacks and its response never ends. Every server test builds an application while others
/// serve, which is how the tests hung. Generated once, before any application of the process can
/// serve (each one needs the list first), the flag is never set while a page renders. The list
/// depends only on `App`, so one generation serves every application.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
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
