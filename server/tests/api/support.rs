//! Test support: the server on a random port (`spawn_app`), a stand-in helper that speaks the real
//! protocol on a real Unix socket, and a reader of server-sent events. The real helper is exercised
//! by the helper's own tests and the end-to-end suite.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ctguard_app::{
    auth::Role,
    dashboard::{DashboardSeed, SEED_PATH, live::LiveSample, thresholds::Thresholds},
};
use ctguard_protocol::{
    BlockRequest, ConntrackStats, ConntrackStatus, CreatorCount, CreatorKey, CreatorList,
    CreatorWindow, Creators, HelperError, HelperHealth, KernelLogSummary, PROTOCOL_VERSION,
    Protocol, Request, Response, SetSysctlRequest, StartTraceRequest, SysctlKey, SysctlReading,
    creators::MAX_CREATORS_PER_LIST,
    frame,
    snapshot::{Group, Snapshot, StateMix, TopList},
    trace::{MAX_TRACE_SECS, TraceCount, TraceInfo, TraceReading},
};
use ctguard_server::{
    auth::SessionPolicy,
    clock::{Clock, ManualClock, SharedClock, SystemClock},
    configuration::{HelperSettings, Settings},
    db,
    domain::{Password, Username},
    hashing::PasswordHasher,
    startup::Application,
    users::UserStore,
};
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use tokio::{net::UnixListener, task::JoinHandle};
use tokio_util::codec::Framed;

#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub helper_socket: PathBuf,
    pub database: PathBuf,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    server: JoinHandle<()>,
}

/// The accounts every test app starts with: one per role, password = `<name>-password!`.
pub const ACCOUNTS: [(&str, Role); 3] = [
    ("vera", Role::Viewer),
    ("otto", Role::Operator),
    ("ada", Role::Admin),
];

pub fn password_of(username: &str) -> String {
    format!("{username}-password!")
}

pub fn account_of(role: Role) -> &'static str {
    ACCOUNTS
        .iter()
        .find(|(_, r)| *r == role)
        .map(|(name, _)| *name)
        .unwrap()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// Stops the server and hands back its directory, to start another on the same state.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.server.abort();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    pub async fn get_text(&self, path: &str) -> (reqwest::StatusCode, String) {
        let response = client_builder()
            .build()
            .unwrap()
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap_or_else(|error| failed(&format!("GET {path}"), &error));
        let status = response.status();
        (status, body(response).await)
    }

    /// Asks the dashboard's seed server function as a signed-in viewer's browser would.
    pub async fn seed(&self) -> DashboardSeed {
        let viewer = self.signed_in(Role::Viewer).await;
        let response = viewer
            .post(format!("{}{SEED_PATH}", self.address))
            .header("origin", self.origin())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_str(&body(response).await).unwrap()
    }
}

/// How long a test's HTTP client waits for the connection, and then for each read of an answer,
/// before failing the test: a server that stops answering (a stalled page stream, a deadlock)
/// fails fast with the request named instead of hanging the test binary.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Every test client starts here. A read timeout rather than a total one: it resets with each
/// chunk, so the live event streams tests hold open stay open while they flow.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
}

/// Fails the test for a request that got no (complete) answer, saying which and why.
pub fn failed(what: &str, error: &reqwest::Error) -> ! {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    if error.is_timeout() {
        panic!("{what}: the server sent nothing for {READ_TIMEOUT:?} ({cause})");
    }
    panic!("{what}: {cause}");
}

/// The whole body of a response, failing the test clearly if the server stops sending it.
pub async fn body(response: reqwest::Response) -> String {
    let what = format!("the body of {}", response.url().path());
    response
        .text()
        .await
        .unwrap_or_else(|error| failed(&what, &error))
}

/// Polls `condition` every 50 ms until it holds, failing after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the server on 127.0.0.1:0 with a fast sampler, a fresh database holding [`ACCOUNTS`], a
/// manual clock, and a helper socket path in a temp dir where nothing listens yet.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), |_| {}).await
}

/// As [`spawn_app`], with settings adjusted first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), adjust).await
}

/// Starts the server with its database, state (saving its history every 200 ms) and helper socket
/// in `dir`; a second server on the same `dir` finds the first one's state.
pub async fn spawn_app_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    start(dir, adjust, TestClock::Manual).await
}

/// As [`spawn_app_with`], on the system clock: for timeouts tested in real seconds against the
/// real cookie and session store (the app's `clock` field then moves nothing).
pub async fn spawn_app_on_the_system_clock(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    start(tempfile::tempdir().unwrap(), adjust, TestClock::System).await
}

/// Which clock the server under test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestClock {
    Manual,
    System,
}

async fn start(
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut Settings),
    which_clock: TestClock,
) -> TestApp {
    ctguard_server::telemetry::init();
    let helper_socket = dir.path().join("helper.sock");
    let database = dir.path().join("ctguard.db");
    let clock = ManualClock::starting_now();

    let pool = db::open(&database).await.unwrap();
    let users = UserStore::new(pool);
    let hasher = PasswordHasher::new().unwrap();
    for (name, role) in ACCOUNTS {
        if users.find(name).await.unwrap().is_some() {
            continue; // a restart on the same directory
        }
        let hash = hasher
            .hash(&Password::parse(password_of(name)).unwrap())
            .await
            .unwrap();
        users
            .create(&Username::parse(name).unwrap(), &hash, role, clock.now())
            .await
            .unwrap();
    }

    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        site_root: dir.path().join("site"),
        helper: HelperSettings {
            socket: helper_socket.clone(),
            timeout: Duration::from_millis(500),
            slow_timeout: Duration::from_secs(20),
        },
        sample_interval: Duration::from_millis(100),
        database: database.clone(),
        public_origins: Vec::new(),
        session: SessionPolicy::default(),
        trusted_proxy: None,
        state_dir: dir.path().join("state"),
        history_save_interval: Duration::from_millis(200),
        thresholds: Thresholds::default(),
        confirmation_lifetime: std::time::Duration::from_secs(
            ctguard_server::confirmation::TOKEN_LIFETIME_SECS as u64,
        ),
        metrics_token: None,
        metrics_top_creators: ctguard_server::configuration::DEFAULT_METRICS_TOP_CREATORS,
        audit_retention_days: ctguard_server::audit::retention::DEFAULT_DAYS,
    };
    adjust(&mut settings);
    let server_clock: SharedClock = match which_clock {
        TestClock::Manual => clock.clone(),
        TestClock::System => Arc::new(SystemClock),
    };
    let application = Application::build_with_clock(settings, server_clock)
        .await
        .unwrap();
    let address = format!("http://{}", application.local_addr());
    // Never stopped by a signal: `run_until_stopped` would install process-wide SIGTERM and
    // SIGINT handlers, and then `timeout` or Ctrl-C could not end a hung test binary. The test
    // stops its server by aborting this task.
    let server = tokio::spawn(async move {
        application.run_until(std::future::pending()).await.unwrap();
    });
    TestApp {
        address,
        helper_socket,
        database,
        clock,
        dir,
        server,
    }
}

impl TestApp {
    /// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
    pub fn browser(&self) -> reqwest::Client {
        client_builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// The origin the server accepts state changes from (its default public origins).
    pub fn origin(&self) -> String {
        self.address.clone()
    }

    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(format!("{}{path}", self.address))
            .header("origin", self.origin())
            .form(form)
            .send()
            .await
            .unwrap_or_else(|error| failed(&format!("POST {path}"), &error))
    }

    /// Calls a server function that takes JSON, as the UI does.
    pub async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        client
            .post(format!("{}{path}", self.address))
            .header("origin", self.origin())
            .json(body)
            .send()
            .await
            .unwrap_or_else(|error| failed(&format!("POST {path}"), &error))
    }

    /// Asks for the preview of an operation on the kernel (a block, a sysctl change) at `path`.
    pub async fn preview_operation(
        &self,
        client: &reqwest::Client,
        path: &str,
        operation: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json(client, path, &serde_json::json!({ "operation": operation }))
            .await
    }

    /// Confirms an operation at `path` with the token of its preview.
    pub async fn apply_operation(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: &str,
        operation: &serde_json::Value,
    ) -> reqwest::Response {
        self.post_json(
            client,
            path,
            &serde_json::json!({ "token": token, "operation": operation }),
        )
        .await
    }

    /// Previews a user change and confirms it with the token it returned.
    pub async fn change_user(
        &self,
        admin: &reqwest::Client,
        change: serde_json::Value,
    ) -> reqwest::Response {
        let token = self.preview_user_change(admin, change.clone()).await;
        self.post_json(
            admin,
            ctguard_app::admin::users::ApplyUserChange::PATH,
            &serde_json::json!({ "token": token, "change": change }),
        )
        .await
    }

    /// The token of a user change's preview (the preview must succeed).
    pub async fn preview_user_change(
        &self,
        admin: &reqwest::Client,
        change: serde_json::Value,
    ) -> String {
        let response = self
            .post_json(
                admin,
                ctguard_app::admin::users::PreviewUserChange::PATH,
                &serde_json::json!({ "change": change }),
            )
            .await;
        assert_eq!(response.status(), 200, "preview accepted");
        let preview: ctguard_app::confirm::Preview = response.json().await.unwrap();
        preview.token
    }

    /// Signs in with the login form; returns the response (a redirect either way).
    pub async fn sign_in(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_form(
            client,
            "/auth/login",
            &[
                ("username", username),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    /// A client signed in as the account of `role`.
    pub async fn signed_in(&self, role: Role) -> reqwest::Client {
        let client = self.browser();
        let name = account_of(role);
        let response = self.sign_in(&client, name, &password_of(name)).await;
        assert_eq!(location(&response), "/", "{name} signs in");
        client
    }

    pub async fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client
            .get(format!("{}{path}", self.address))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap_or_else(|error| failed(&format!("GET {path}"), &error))
    }
}

/// An answer read off the wire by [`TestApp::raw_request`].
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The header block, lower-cased.
    pub headers: String,
    pub body: String,
}

impl TestApp {
    /// Sends one HTTP/1.1 request exactly as written, on a connection of its own: no client
    /// resolves `..` or `%2e` first, as reqwest's URL parser does. `headers` are whole lines
    /// (`"cookie: a=b"`). Fails the test when the server closes the connection without an answer
    /// (what a panicking handler does).
    pub async fn raw_request(
        &self,
        method: &str,
        target: &str,
        headers: &[&str],
        body: &str,
    ) -> RawAnswer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let host = self.address.trim_start_matches("http://");
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{method} {target}: no answer within {READ_TIMEOUT:?}"))
            .unwrap_or_else(|error| panic!("{method} {target}: {error}"));
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| {
            panic!("{method} {target}: the connection closed without an answer")
        });
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{method} {target}: no status line in {head:?}"));
        RawAnswer {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }
}

/// The session cookie a response sets, whole (with its attributes).
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("ctguard_session="))
}

/// `name=value` of a `Set-Cookie` line, as a browser sends it back.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A client holding exactly this cookie and nothing else.
pub fn with_cookie(cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", cookie.parse().unwrap());
    client_builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The status of `/api/live` for `client`: 200 while signed in, 401 when not.
pub async fn live_status(app: &TestApp, client: &reqwest::Client) -> u16 {
    // The live feed is a stream: only its status matters here.
    client
        .get(format!("{}/api/live", app.address))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Where a redirect points.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub fn sample_status(count: u64) -> ConntrackStatus {
    ConntrackStatus {
        count,
        max: 65_536,
        buckets: 16_384,
        stats: ConntrackStats {
            drop: 7,
            ..ConntrackStats::default()
        },
        entry_bytes: Some(256),
        host_memory_bytes: 8 << 30,
        per_cpu: Vec::new(),
        identity: None,
        memory: Default::default(),
    }
}

/// What a fake helper says about itself: blocks in force, and a journal that failed once.
pub fn sample_health() -> HelperHealth {
    HelperHealth {
        blocks_active: 4,
        journal_write_failures: 1,
    }
}

pub fn sample_kernel_log() -> KernelLogSummary {
    KernelLogSummary {
        window_secs: 600,
        table_full: 3,
        suppressed: 41,
        ..KernelLogSummary::default()
    }
}

/// The sysctl values a fake helper starts with: every key, the table as in [`sample_status`].
pub fn sample_sysctls() -> BTreeMap<SysctlKey, u64> {
    SysctlKey::ALL
        .iter()
        .map(|&key| {
            let value = match key {
                SysctlKey::NfConntrackMax => 65_536,
                SysctlKey::NfConntrackBuckets => 16_384,
                SysctlKey::TcpTimeoutEstablished => 432_000,
                other => ctguard_app::operators::tuning::advice::kernel_default(other).unwrap(),
            };
            (key, value)
        })
        .collect()
}

/// Makes every new audit record fail to write, as a full disk or a broken database would: a real
/// SQLite trigger on the real store.
pub async fn break_the_audit_log(app: &TestApp) {
    let pool = ctguard_server::db::open(&app.database).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_unwritable BEFORE INSERT ON audit
         BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
}

/// A stand-in record hash, distinct per record and per version of the "journal".
fn fake_record_hash(seq: u64, version: &str) -> ctguard_protocol::RecordHash {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (seq, version).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
        .repeat(4)
        .try_into()
        .unwrap()
}

/// A creators answer cut to `limit` per list, as the helper cuts it: the rest of each list's
/// new flows go to its `rest`.
fn cut_to(mut answer: Creators, limit: u16) -> Creators {
    for list in answer.windows.iter_mut().flat_map(|w| w.lists.iter_mut()) {
        let cut = list.top.split_off(usize::from(limit).min(list.top.len()));
        list.rest += cut.iter().map(|c| c.new_flows).sum::<u64>();
    }
    answer
}

/// An address that floods with short flows: it holds few entries (they expire between walks)
/// and creates 9,000 a second over the last minute.
pub const FLOODER: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 66));
/// A busy reverse proxy: it holds many keep-alive connections and creates 2 entries a second.
pub const BUSY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 10));

/// What a counting helper answers: every window covered, [`FLOODER`] the top source at
/// 540,000 new flows a minute (9,000/s), [`BUSY`] the tenth at 120 (2/s); twelve creators per
/// key, so a limit of 10 or less cuts the lists; 600 uncounted flows a minute per key (10/s).
pub fn sample_creators() -> Creators {
    let window = |seconds: u32| {
        // The counts of the minute window, scaled to the window's length.
        let scale = |count: u64| count * u64::from(seconds) / 60;
        let lists = CreatorKey::ALL
            .into_iter()
            .map(|key| {
                let service = ctguard_app::operators::creators::has_service(key);
                let creator = |address: std::net::IpAddr, new_flows: u64| CreatorCount {
                    address,
                    protocol: service.then_some(Protocol::Udp),
                    port: service.then_some(53),
                    new_flows: scale(new_flows),
                };
                let mut top = vec![creator(FLOODER, 540_000)];
                // 60,000 down to 18,000 a minute (1,000/s to 300/s).
                top.extend((1..=8).map(|i| {
                    creator(
                        std::net::IpAddr::from([192, 0, 2, i]),
                        6_000 * u64::from(11 - i),
                    )
                }));
                top.push(creator(BUSY, 120));
                top.push(creator(std::net::IpAddr::from([192, 0, 2, 100]), 60));
                top.push(creator(std::net::IpAddr::from([192, 0, 2, 101]), 30));
                CreatorList {
                    key,
                    top,
                    rest: scale(1_200),
                    uncounted: scale(600),
                }
            })
            .collect();
        CreatorWindow {
            seconds,
            covered_secs: seconds,
            new_flows: scale(1_200_000),
            lists,
            turned_away: ctguard_protocol::creators::TurnedAway {
                top: Vec::new(),
                rest: 0,
                uncounted: 0,
                kernel_drops: 0,
                unwatched_drops: 0,
            },
        }
    };
    Creators {
        counting: true,
        problem: None,
        set_capacity: 65_536,
        sample_secs: 10,
        sampled_at: 1_795_698_245,
        windows: ctguard_protocol::creators::WINDOWS_SECS
            .into_iter()
            .map(window)
            .collect(),
        watching_since: None,
        watch_from_percent: 90,
    }
}

/// What the stand-in's trace is doing.
#[derive(Debug, Default)]
pub struct FakeTrace {
    pub reading: Option<TraceReading>,
    pub running: bool,
}

/// A trace's counts: [`FLOODER`] opened most of the matching flows, to one destination port.
pub fn sample_trace_reading(info: TraceInfo) -> TraceReading {
    let count = |address: Option<std::net::IpAddr>, port: Option<u16>, new_flows: u64| TraceCount {
        address,
        protocol: port.map(|_| Protocol::Udp),
        port,
        new_flows,
    };
    TraceReading {
        info,
        new_flows: 9_120,
        sources: vec![
            count(Some(FLOODER), None, 9_000),
            count(Some(BUSY), None, 120),
        ],
        destinations: vec![count(
            Some(std::net::IpAddr::from([198, 51, 100, 10])),
            None,
            9_120,
        )],
        destination_ports: vec![count(None, Some(53), 9_120)],
        uncounted_sources: 0,
    }
}

/// A walk of a table [`BUSY`] holds most of, all assured (a large share, held open), beside
/// [`FLOODER`]'s 60 unreplied entries: what is left of its short flows at the walk.
pub fn sample_snapshot() -> Snapshot {
    let list = |top: Vec<Group<std::net::IpAddr>>| TopList {
        distinct: top.len() as u64,
        top,
        rest: StateMix::default(),
    };
    let busy = StateMix {
        entries: 20_000,
        assured: 19_900,
        established: 19_900,
        ..StateMix::default()
    };
    let flooder = StateMix {
        entries: 60,
        unreplied: 60,
        ..StateMix::default()
    };
    Snapshot {
        taken_unix_ms: 1_795_698_245_000,
        walk_ms: 12,
        total: StateMix {
            entries: 20_060,
            unreplied: 60,
            assured: 19_900,
            established: 19_900,
            ..StateMix::default()
        },
        sources: list(vec![
            Group {
                key: BUSY,
                mix: busy,
            },
            Group {
                key: FLOODER,
                mix: flooder,
            },
        ]),
        destinations: list(Vec::new()),
        dports: TopList {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        },
        source_dports: TopList {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        },
        source_sports: TopList {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        },
        source_spread: Vec::new(),
        protocols: TopList {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        },
        tcp_states: TopList {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        },
        destination_sources: Default::default(),
        destination_services: Default::default(),
    }
}

/// Connections the real helper serves at once (`helper/src/listener.rs`); the stand-in too.
pub const HELPER_MAX_CONNECTIONS: usize = 32;

/// A stand-in helper answering `status` with a fixed count, counting the status requests.
#[derive(Debug)]
pub struct FakeHelper {
    pub status_requests: Arc<AtomicU64>,
    /// Block requests it was asked to carry out.
    pub block_requests: Arc<AtomicU64>,
    /// The "kernel's" sysctls: read and written through the protocol, or behind its back.
    pub sysctls: Arc<Mutex<BTreeMap<SysctlKey, u64>>>,
    /// How long a change (a block, a sysctl write) takes before it lands, in milliseconds: the
    /// window in which a second confirmation could slip between the first's check and its write.
    pub change_delay_ms: Arc<AtomicU64>,
    /// How long a walk of the table (an `entries` request) takes, in milliseconds.
    pub walk_delay_ms: Arc<AtomicU64>,
    /// The "journal": the hash of each record it named in an answer, as it holds them now.
    pub journal: Arc<Mutex<BTreeMap<u64, ctguard_protocol::RecordHash>>>,
    /// The references the last `verify_journal` asked about.
    pub journal_checked: Arc<Mutex<Vec<ctguard_protocol::JournalRef>>>,
    /// The answer to `creators` (each list cut to the limit asked, the rest folded into `rest`),
    /// or `None` (the default): refused as unsupported, as today's real helper does.
    pub creators: Arc<Mutex<Option<Creators>>>,
    /// The limit of every `creators` request, in order.
    pub creators_asked: Arc<Mutex<Vec<u16>>>,
    /// The answer to `snapshot`, or `None` (the default): refused as unsupported.
    pub snapshot: Arc<Mutex<Option<Snapshot>>>,
    /// The trace: the last one's reading and whether it runs (started, stopped and read through
    /// the protocol, one at a time, as the real helper).
    pub trace: Arc<Mutex<FakeTrace>>,
    /// The names of the `start_trace` and `stop_trace` requests it was asked, in order.
    pub trace_requests: Arc<Mutex<Vec<&'static str>>>,
    task: JoinHandle<()>,
    socket: PathBuf,
}

impl FakeHelper {
    /// What another agent (kube-proxy, an admin with a shell) does: change a value directly.
    pub fn change_behind_the_panels_back(&self, key: SysctlKey, value: u64) {
        self.sysctls.lock().unwrap().insert(key, value);
    }

    pub fn sysctl(&self, key: SysctlKey) -> u64 {
        self.sysctls.lock().unwrap()[&key]
    }

    /// The running trace reaches its deadline: its counts stay, as the real helper's.
    pub fn end_trace(&self) {
        self.trace.lock().unwrap().running = false;
    }

    pub fn start(socket: &Path, count: u64) -> Self {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap();
        let status_requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&status_requests);
        let block_requests = Arc::new(AtomicU64::new(0));
        let block_counter = Arc::clone(&block_requests);
        let sysctls = Arc::new(Mutex::new(sample_sysctls()));
        let kernel = Arc::clone(&sysctls);
        let change_delay_ms = Arc::new(AtomicU64::new(0));
        let delay = Arc::clone(&change_delay_ms);
        let walk_delay_ms = Arc::new(AtomicU64::new(0));
        let walk_delay = Arc::clone(&walk_delay_ms);
        let journal: Arc<Mutex<BTreeMap<u64, ctguard_protocol::RecordHash>>> = Arc::default();
        let journal_checked: Arc<Mutex<Vec<ctguard_protocol::JournalRef>>> = Arc::default();
        let (records, checked) = (Arc::clone(&journal), Arc::clone(&journal_checked));
        let creators: Arc<Mutex<Option<Creators>>> = Arc::default();
        let creators_asked: Arc<Mutex<Vec<u16>>> = Arc::default();
        let snapshot: Arc<Mutex<Option<Snapshot>>> = Arc::default();
        let trace: Arc<Mutex<FakeTrace>> = Arc::default();
        let trace_requests: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let (tracing_state, traced) = (Arc::clone(&trace), Arc::clone(&trace_requests));
        let (counting, asked, walk) = (
            Arc::clone(&creators),
            Arc::clone(&creators_asked),
            Arc::clone(&snapshot),
        );
        // As the real helper: more connections at once than it serves are closed unanswered.
        let slots = Arc::new(tokio::sync::Semaphore::new(HELPER_MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let counter = Arc::clone(&counter);
                let blocks = Arc::clone(&block_counter);
                let kernel = Arc::clone(&kernel);
                let delay = Arc::clone(&delay);
                let walk_delay = Arc::clone(&walk_delay);
                let (records, checked) = (Arc::clone(&records), Arc::clone(&checked));
                let (counting, asked, walk) =
                    (Arc::clone(&counting), Arc::clone(&asked), Arc::clone(&walk));
                let (tracing_state, traced) = (Arc::clone(&tracing_state), Arc::clone(&traced));
                tokio::spawn(async move {
                    // Names journal record `seq` in an answer, as the helper's journal holds it.
                    let journaled = |seq: u64| {
                        let mut records = records.lock().unwrap();
                        let hash = records
                            .entry(seq)
                            .or_insert_with(|| fake_record_hash(seq, "original"));
                        ctguard_protocol::JournalRef {
                            seq,
                            hash: hash.clone(),
                        }
                    };
                    let _slot = slot;
                    let mut transport = Framed::new(stream, frame::codec());
                    while let Some(Ok(body)) = transport.next().await {
                        let request = frame::decode::<Request>(&body).unwrap();
                        let ms = match request {
                            Request::Block(_) | Request::SetSysctl(_) | Request::StartTrace(_) => {
                                delay.load(Ordering::SeqCst)
                            }
                            Request::Entries { .. } => walk_delay.load(Ordering::SeqCst),
                            _ => 0,
                        };
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let response = match request {
                            Request::Hello { .. } => Response::Welcome {
                                protocol_version: PROTOCOL_VERSION,
                                helper_version: "fake".into(),
                                netns: None,
                            },
                            Request::Status {} => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                Response::Status {
                                    status: sample_status(count),
                                    helper: sample_health(),
                                }
                            }
                            Request::KernelLog {} => Response::KernelLog {
                                log: sample_kernel_log(),
                            },
                            // Enough of the operator requests to exercise the server's side: no
                            // blocks, no entries, and a block that "succeeds" (counted).
                            Request::ListBlocks {} => Response::Blocks { blocks: Vec::new() },
                            Request::Entries { .. } => Response::Entries {
                                entries: Vec::new(),
                                truncated: false,
                            },
                            Request::Block(BlockRequest {
                                target,
                                duration,
                                reason,
                                requested_by,
                                actor,
                            }) => {
                                blocks.fetch_add(1, Ordering::SeqCst);
                                Response::Blocked {
                                    block: ctguard_protocol::ActiveBlock {
                                        target,
                                        reason,
                                        actor,
                                        requested_by,
                                        created_unix: 0,
                                        expires_unix: duration.secs(),
                                        journal_seq: 42,
                                        packets_dropped: None,
                                    },
                                    entries_deleted: 0,
                                    journal: journaled(42),
                                }
                            }
                            Request::VerifyJournal { expect } => {
                                let held = records.lock().unwrap().clone();
                                let mismatches = expect
                                    .iter()
                                    .filter(|r| held.get(&r.seq) != Some(&r.hash))
                                    .map(|r| ctguard_protocol::JournalMismatch {
                                        expected: r.clone(),
                                        found: held.get(&r.seq).cloned(),
                                    })
                                    .collect();
                                *checked.lock().unwrap() = expect;
                                Response::JournalCheck {
                                    check: ctguard_protocol::JournalCheck {
                                        records: 12,
                                        broken: None,
                                        writable: true,
                                        mismatches,
                                    },
                                }
                            }
                            Request::StartTrace(StartTraceRequest {
                                filter, seconds, ..
                            }) => {
                                traced.lock().unwrap().push("start_trace");
                                let mut trace = tracing_state.lock().unwrap();
                                match &trace.reading {
                                    Some(running) if trace.running => Response::Error {
                                        error: HelperError::TraceRunning {
                                            filter: running.info.filter,
                                        },
                                    },
                                    _ if !(1..=MAX_TRACE_SECS).contains(&seconds) => {
                                        Response::Error {
                                            error: HelperError::TraceLength {
                                                seconds,
                                                max: MAX_TRACE_SECS,
                                            },
                                        }
                                    }
                                    _ => {
                                        let info = TraceInfo {
                                            filter,
                                            started_at: 1_795_698_245,
                                            ends_at: 1_795_698_245 + u64::from(seconds),
                                        };
                                        trace.reading = Some(sample_trace_reading(info));
                                        trace.running = true;
                                        Response::TraceStarted {
                                            trace: info,
                                            journal: journaled(50),
                                        }
                                    }
                                }
                            }
                            Request::StopTrace(_) => {
                                traced.lock().unwrap().push("stop_trace");
                                let mut trace = tracing_state.lock().unwrap();
                                match trace.reading.as_ref().map(|r| r.info) {
                                    Some(info) if trace.running => {
                                        trace.running = false;
                                        Response::TraceStopped {
                                            trace: info,
                                            journal: journaled(51),
                                        }
                                    }
                                    _ => Response::Error {
                                        error: HelperError::NoTrace,
                                    },
                                }
                            }
                            Request::Trace {} => {
                                let trace = tracing_state.lock().unwrap();
                                Response::Trace {
                                    reading: trace.reading.clone().map(Box::new),
                                    running: trace.running,
                                }
                            }
                            Request::Creators { limit } => {
                                asked.lock().unwrap().push(limit);
                                let answer = counting.lock().unwrap().clone();
                                match answer {
                                    _ if limit > MAX_CREATORS_PER_LIST => Response::Error {
                                        error: HelperError::TooManyCreators {
                                            given: limit,
                                            max: MAX_CREATORS_PER_LIST,
                                        },
                                    },
                                    Some(answer) => Response::Creators {
                                        creators: Box::new(cut_to(answer, limit)),
                                    },
                                    None => Response::Error {
                                        error: HelperError::Unsupported {
                                            request: "creators".into(),
                                        },
                                    },
                                }
                            }
                            Request::Snapshot {} => {
                                let answer = walk.lock().unwrap().clone();
                                match answer {
                                    Some(snapshot) => Response::Snapshot {
                                        snapshot: Box::new(snapshot),
                                    },
                                    None => Response::Error {
                                        error: HelperError::Unsupported {
                                            request: "snapshot".into(),
                                        },
                                    },
                                }
                            }
                            Request::ReadSysctls {} => Response::Sysctls {
                                readings: kernel
                                    .lock()
                                    .unwrap()
                                    .iter()
                                    .map(|(&key, &value)| SysctlReading {
                                        key,
                                        value: Some(value),
                                        persisted: None,
                                    })
                                    .collect(),
                                module: ctguard_protocol::ConntrackModule::Loadable,
                            },
                            Request::SetSysctl(SetSysctlRequest {
                                key,
                                value,
                                persist,
                                ..
                            }) => {
                                let previous = kernel.lock().unwrap().insert(key, value).unwrap();
                                Response::Sysctl {
                                    key,
                                    previous,
                                    value,
                                    persisted: persist,
                                    journal: journaled(77),
                                }
                            }
                            request @ (Request::Unblock(_)
                            | Request::DeleteEntries(_)
                            | Request::Journal { .. }) => Response::Error {
                                error: HelperError::Unsupported {
                                    request: request.name().into(),
                                },
                            },
                        };
                        if transport
                            .send(frame::encode(&response).unwrap())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            status_requests,
            block_requests,
            sysctls,
            change_delay_ms,
            walk_delay_ms,
            journal,
            journal_checked,
            creators,
            creators_asked,
            snapshot,
            trace,
            trace_requests,
            task,
            socket: socket.to_owned(),
        }
    }

    /// From now on `creators` is answered with `answer` (`None`: refused as unsupported).
    pub fn answer_creators(&self, answer: Option<Creators>) {
        *self.creators.lock().unwrap() = answer;
    }

    /// From now on `snapshot` is answered with `answer` (`None`: refused as unsupported).
    pub fn answer_snapshot(&self, answer: Option<Snapshot>) {
        *self.snapshot.lock().unwrap() = answer;
    }

    pub fn requests(&self) -> u64 {
        self.status_requests.load(Ordering::SeqCst)
    }

    /// What root can do to the journal behind the helper's back: every record it holds replaced
    /// by another under the same number (cut short and grown back to the same length).
    pub fn rewrite_journal(&self) {
        for (seq, hash) in self.journal.lock().unwrap().iter_mut() {
            *hash = fake_record_hash(*seq, "rewritten");
        }
    }

    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A subscriber to `/api/live`, decoding each event's JSON.
pub struct LiveEvents {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    /// Named events seen by [`Self::ends_within`].
    named: Vec<String>,
}

impl std::fmt::Debug for LiveEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveEvents")
    }
}

impl LiveEvents {
    pub async fn connect(app: &TestApp, client: &reqwest::Client) -> Self {
        let response = client
            .get(format!("{}/api/live", app.address))
            .send()
            .await
            .unwrap_or_else(|error| failed("GET /api/live", &error));
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE stream"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            named: Vec::new(),
        }
    }

    pub async fn next(&mut self) -> LiveSample {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return serde_json::from_str(&data).unwrap();
            }
            let chunk = self.stream.next().await.expect("stream open").unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads on until the server ends the stream; fails the test if it is still open after
    /// `limit`. Returns the names of the named events among what it read (`event: …` lines).
    pub async fn ends_within(&mut self, what: &str, limit: Duration) -> Vec<String> {
        tokio::time::timeout(limit, async {
            while let Some(chunk) = self.stream.next().await {
                let chunk =
                    chunk.unwrap_or_else(|error| panic!("{what}: the stream broke: {error}"));
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                // Keep only the unfinished event and the named ones: samples are not needed here.
                let cut = self.buffer.rfind("\n\n").map_or(0, |end| end + 2);
                let done: String = self.buffer.drain(..cut).collect();
                self.named.extend(
                    done.lines()
                        .filter_map(|l| l.strip_prefix("event:"))
                        .map(|n| n.trim().to_owned()),
                );
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream was still open after {limit:?}"));
        std::mem::take(&mut self.named)
    }

    /// The first sample that satisfies `wanted`, within a deadline.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&LiveSample) -> bool) -> LiveSample {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let sample = self.next().await;
                if wanted(&sample) {
                    return sample;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} sample within 10 s"))
    }
}
