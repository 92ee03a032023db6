//! Sign-in and sessions as an attacker, and a long night, meet them (issue 13), through real HTTP
//! against the real cookie and SQLite session store. Sessions run on the real clock: one in use
//! outlives its idle timeout, silence ends it, and the absolute lifetime ends it however busy it is
//! (timeouts of a few seconds keep each test within a few seconds of wall time). `next` leads only
//! to the panel's own pages; answers are not cached, and over HTTPS they carry HSTS; what a client
//! types reaches the server's log escaped; a burst of guesses gets no more password checks than the
//! throttle's limit, an IPv6 attacker is counted by its /64, a browser that signed in before keeps
//! its way in, and clients that hang up neither push the hasher past its bound nor go unaudited.
//! The logins table tells the truth: a browser signing in again ends its login before, expired
//! logins are swept whether or not their browser comes back, and the Users page counts only live
//! sessions.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::{Duration, Instant};

use ctguard_app::{
    admin::users::{Account, ListAccounts},
    auth::Role,
};
use ctguard_server::db;
use leptos::server_fn::ServerFn;
use support::{
    TestApp, cookie_value, location, password_of, session_cookie, spawn_app,
    spawn_app_on_the_system_clock, spawn_app_with, with_cookie,
};

const IDLE: Duration = Duration::from_secs(2);
/// Requests this far apart keep a session busy: well inside the idle timeout, whichever second the
/// server's clock rounds each of them to.
const BUSY_PACE: Duration = Duration::from_millis(500);

/// Signs vera in; returns her session cookie as a browser sends it back.
async fn sign_in(app: &TestApp) -> String {
    let response = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    cookie_value(&session_cookie(&response).expect("a session cookie"))
}

/// One request of a session in use: the live feed's status (200 signed in, 401 not) and the
/// session cookie the answer sets, if any.
async fn use_the_panel(app: &TestApp, client: &reqwest::Client) -> (u16, Option<String>) {
    let response = client
        .get(format!("{}/api/live", app.address))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), session_cookie(&response))
}

#[tokio::test]
async fn a_session_in_use_outlives_its_idle_timeout_and_silence_ends_it() {
    let app = spawn_app_on_the_system_clock(|settings| settings.session.idle = IDLE).await;
    let cookie = sign_in(&app).await;
    // The cookie sent back as it is, whatever its Max-Age: this is what the server accepts, not
    // what a browser forgets.
    let browser = with_cookie(&cookie);

    let signed_in = Instant::now();
    let mut renewed_after_idle = None;
    while signed_in.elapsed() < 2 * IDLE + IDLE / 4 {
        tokio::time::sleep(BUSY_PACE).await;
        let (status, set_cookie) = use_the_panel(&app, &browser).await;
        assert_eq!(
            status,
            200,
            "in use, signed in {:?} ago",
            signed_in.elapsed()
        );
        if signed_in.elapsed() > IDLE && set_cookie.is_some() {
            renewed_after_idle = set_cookie;
        }
    }
    // A browser keeps a cookie only for its Max-Age: the server renews it while the session is in
    // use, for the same session.
    let renewed = renewed_after_idle.expect("the cookie is renewed while the session is in use");
    assert_eq!(cookie_value(&renewed), cookie);
    assert!(renewed.contains("Max-Age=2"), "{renewed}");

    tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
    assert_eq!(
        use_the_panel(&app, &browser).await.0,
        401,
        "silence longer than the idle timeout ends the session"
    );
}

#[tokio::test]
async fn the_absolute_lifetime_ends_a_busy_session() {
    const LIFETIME: Duration = Duration::from_secs(4);
    let app = spawn_app_on_the_system_clock(|settings| {
        settings.session.idle = IDLE;
        settings.session.absolute = LIFETIME;
    })
    .await;
    let browser = with_cookie(&sign_in(&app).await);

    let signed_in = Instant::now();
    let mut ended_after = None;
    while signed_in.elapsed() < LIFETIME + Duration::from_secs(2) {
        tokio::time::sleep(BUSY_PACE).await;
        if use_the_panel(&app, &browser).await.0 == 401 {
            ended_after = Some(signed_in.elapsed());
            break;
        }
    }
    let ended_after = ended_after.expect("the session ended however busy");
    assert!(
        ended_after > IDLE,
        "busy beyond the idle timeout first: {ended_after:?}"
    );
    let pool = db::open(&app.database).await.unwrap();
    let reasons: Vec<Option<String>> = sqlx::query_scalar("SELECT end_reason FROM logins")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(reasons, [Some("absolute lifetime".to_owned())]);
}

/// Signs vera in with `next` as the login form carries it; returns where the server sends her.
async fn sign_in_then(app: &TestApp, next: &str) -> String {
    let response = app
        .post_form(
            &app.browser(),
            "/auth/login",
            &[
                ("username", "vera"),
                ("password", &password_of("vera")),
                ("next", next),
            ],
        )
        .await;
    location(&response)
}

#[tokio::test]
async fn after_sign_in_next_leads_only_to_a_page_of_the_panel() {
    let app = spawn_app().await;
    for (next, expected) in [
        ("/users", "/users"),
        ("/audit?actor=ada", "/audit?actor=ada"),
        ("/blocks", "/blocks"),
    ] {
        assert_eq!(sign_in_then(&app, next).await, expected, "{next:?}");
    }
    // What the login page's hidden field holds once the browser has decoded the link's query
    // (`/login?next=%2F%09%2Fevil.example%2F` gives a tab), and spellings of another host, a
    // script, or a page the panel does not have.
    for next in [
        "/\t/evil.example/",
        "/%09/evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/%2F%2Fevil.example/",
        "/%5C%5Cevil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "javascript:alert(document.cookie)",
        "https://evil.example/",
        "HTTPS://evil.example/users",
        " //evil.example/",
        "/login",
        "/no-such-page",
    ] {
        assert_eq!(sign_in_then(&app, next).await, "/", "{next:?}");
    }
}

#[tokio::test]
async fn a_failed_sign_in_carries_only_a_safe_next_back_to_the_form() {
    let app = spawn_app().await;
    let response = app
        .post_form(
            &app.browser(),
            "/auth/login",
            &[
                ("username", "vera"),
                ("password", "not-the-password"),
                ("next", "/\t/evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/login?error=invalid&next=/");
}

#[tokio::test]
async fn signed_in_answers_are_not_stored_by_caches_but_static_files_may_be() {
    let app = spawn_app().await;
    let site = app.dir.path().join("site/pkg");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("probe.js"), "// the same for everyone\n").unwrap();
    let viewer = app.signed_in(Role::Viewer).await;
    let admin = app.signed_in(Role::Admin).await;

    let cache_control = |response: &reqwest::Response| {
        response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let page = app.get(&viewer, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(cache_control(&page).as_deref(), Some("no-store"), "a page");
    let live = viewer
        .get(format!("{}/api/live", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache_control(&live).as_deref(),
        Some("no-store"),
        "the live feed"
    );
    let seed = app
        .post_form(&viewer, ctguard_app::dashboard::SEED_PATH, &[])
        .await;
    assert_eq!(seed.status(), 200);
    assert_eq!(
        cache_control(&seed).as_deref(),
        Some("no-store"),
        "a server function"
    );
    let export = app.get(&admin, "/audit.csv").await;
    assert_eq!(export.status(), 200);
    assert_eq!(
        cache_control(&export).as_deref(),
        Some("no-store"),
        "the export"
    );
    let refused = app.get(&viewer, "/users").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        cache_control(&refused).as_deref(),
        Some("no-store"),
        "a refusal"
    );

    let file = app.get(&viewer, "/pkg/probe.js").await;
    assert_eq!(file.status(), 200);
    assert_ne!(
        cache_control(&file).as_deref(),
        Some("no-store"),
        "a static file"
    );
    assert!(
        file.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
}

#[tokio::test]
async fn over_https_every_answer_asks_for_https_only() {
    let app = spawn_app_with(|settings| settings.session.secure_cookies = true).await;
    for path in ["/login", "/", "/metrics", "/pkg/none.js"] {
        let response = app.get(&app.browser(), path).await;
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

/// The server as deployed: its own binary on a port of its choosing, logging to a pipe as under a
/// service manager, colours off (so any escape sequence in its output came from a client).
struct ServerProcess {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    address: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-server"))
            .arg("--listen=127.0.0.1:0")
            .arg(format!(
                "--database={}",
                dir.path().join("ctguard.db").display()
            ))
            .arg(format!("--state-dir={}", dir.path().display()))
            .arg(format!("--site-root={}", dir.path().join("site").display()))
            .arg(format!(
                "--helper-socket={}",
                dir.path().join("helper.sock").display()
            ))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            address: String::new(),
            _dir: dir,
        };
        let listening = server.line_with("ctguard-server listening");
        server.address = listening
            .split("url=")
            .nth(1)
            .expect("the listening line names the URL")
            .trim()
            .to_owned();
        server
    }

    /// Waits (at most 10 s) for a log line containing `text`; returns it.
    fn line_with(&mut self, text: &str) -> String {
        self.lines_until(text).pop().unwrap()
    }

    /// Every log line up to and including the first one containing `text`.
    fn lines_until(&mut self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line with {text:?}; saw {seen:#?}"));
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn text_a_client_chose_cannot_forge_a_log_line() {
    let mut server = tokio::task::spawn_blocking(ServerProcess::start)
        .await
        .unwrap();
    // A name that, logged raw, ends its line and writes one of its own (a successful admin
    // sign-in), then moves the terminal's cursor up over the evidence.
    let forged = "eve\r\nforged-line info audit actor=ada outcome=success\u{1b}[1a\u{1b}[2k";
    let client = support::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Six failures lock the name; the seventh attempt is refused as throttled, and logged so.
    for _ in 0..7 {
        let response = client
            .post(format!("{}/auth/login", server.address))
            .header("origin", &server.address)
            .form(&[("username", forged), ("password", "not-the-password")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
    }
    let lines = tokio::task::spawn_blocking(move || server.lines_until("login throttled"))
        .await
        .unwrap();

    let throttled = lines.last().unwrap();
    assert!(
        throttled.contains(r#"eve\r\nforged-line"#) && throttled.contains(r"\u{1b}[1a"),
        "the name is in the line, escaped: {throttled}"
    );
    for line in &lines {
        assert!(
            !line.trim_start().starts_with("forged"),
            "a forged line: {lines:#?}"
        );
        assert!(
            !line.contains(['\u{1b}', '\r']),
            "a raw control character: {line:?}"
        );
    }
    let audited = lines
        .iter()
        .filter(|line| line.contains(" audit ") && line.contains("eve"))
        .count();
    assert!(
        audited >= 6,
        "every attempt's audit line names it: {lines:#?}"
    );
}

/// How many sign-in attempts the audit log records with this detail.
async fn audited(app: &TestApp, detail: &str) -> usize {
    let pool = db::open(&app.database).await.unwrap();
    // Events, not rows: repeated throttled attempts are one record with a count (issue 13,
    // item 5).
    let count: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(count), 0) FROM audit WHERE action = 'login' AND detail = ?",
    )
    .bind(detail)
    .fetch_one(&pool)
    .await
    .unwrap();
    usize::try_from(count).unwrap()
}

const CHECKED_AND_WRONG: &str = "wrong username or password";
const THROTTLED: &str = "throttled: too many failed attempts";

#[tokio::test]
async fn forty_simultaneous_guesses_get_five_password_checks() {
    let app = spawn_app().await;
    let guesses = (0..40).map(|i| {
        let app = &app;
        async move {
            // Each guess its own browser and connection, all sent at once.
            let response = app
                .sign_in(&app.browser(), "vera", &format!("guess number {i}"))
                .await;
            location(&response)
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let throttled = answers
        .iter()
        .filter(|to| to.starts_with("/login?error=throttled"))
        .count();
    let invalid = answers
        .iter()
        .filter(|to| to.starts_with("/login?error=invalid"))
        .count();
    assert_eq!((invalid, throttled), (5, 35), "{answers:#?}");
    assert_eq!(audited(&app, CHECKED_AND_WRONG).await, 5, "five checks");
    assert_eq!(audited(&app, THROTTLED).await, 35, "every refusal audited");

    // Behind the attacker's address, even the password waits out the quarter-hour lock.
    let owner = app.browser();
    let response = app.sign_in(&owner, "vera", &password_of("vera")).await;
    assert!(location(&response).starts_with("/login?error=throttled"));
    app.clock.advance(15 * 60);
    let response = app.sign_in(&owner, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/");
}

/// A sign-in through the trusted proxy, for a client at `address`; returns where it is sent.
async fn sign_in_from(app: &TestApp, address: &str, username: &str, password: &str) -> String {
    let response = app
        .browser()
        .post(format!("{}/auth/login", app.address))
        .header("origin", app.origin())
        .header("x-forwarded-for", address)
        .form(&[
            ("username", username),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    location(&response)
}

#[tokio::test]
async fn one_address_locks_only_itself_out_of_an_account_and_failures_decay() {
    let app = spawn_app_with(|settings| {
        settings.trusted_proxy = Some("127.0.0.1".parse().unwrap());
    })
    .await;
    const ATTACKER: &str = "203.0.113.66";
    for i in 0..5 {
        let answer = sign_in_from(&app, ATTACKER, "vera", &format!("guess {i}")).await;
        assert!(answer.starts_with("/login?error=invalid"), "{i}: {answer}");
    }
    let locked = sign_in_from(&app, ATTACKER, "vera", &password_of("vera")).await;
    assert!(locked.starts_with("/login?error=throttled"), "{locked}");
    let owner = sign_in_from(&app, "198.51.100.10", "vera", &password_of("vera")).await;
    assert_eq!(owner, "/", "the owner, elsewhere, is not kept out");

    app.clock.advance(5 * 60);
    let still = sign_in_from(&app, ATTACKER, "vera", "guess again").await;
    assert!(
        still.starts_with("/login?error=throttled"),
        "a hard lock for the attacker's address: {still}"
    );

    // Another address fails four times, falls quiet for twelve minutes (one failure forgiven per
    // three), and has its five attempts again.
    const CLUMSY: &str = "192.0.2.44";
    for i in 0..4 {
        sign_in_from(&app, CLUMSY, "otto", &format!("typo {i}")).await;
    }
    app.clock.advance(12 * 60);
    for i in 0..4 {
        let answer = sign_in_from(&app, CLUMSY, "otto", &format!("typo again {i}")).await;
        assert!(answer.starts_with("/login?error=invalid"), "{i}: {answer}");
    }
    let answer = sign_in_from(&app, CLUMSY, "otto", &password_of("otto")).await;
    assert_eq!(answer, "/");
}

#[tokio::test]
async fn an_ipv6_attacker_is_locked_out_by_its_slash_64_not_by_each_address() {
    let app =
        spawn_app_with(|settings| settings.trusted_proxy = Some("127.0.0.1".parse().unwrap()))
            .await;
    let sign_in_from = |address: String, username: String, password: String| {
        let app = &app;
        async move {
            let response = app
                .browser()
                .post(format!("{}/auth/login", app.address))
                .header("origin", app.origin())
                .header("x-forwarded-for", address)
                .form(&[
                    ("username", username),
                    ("password", password),
                    ("next", "/".into()),
                ])
                .send()
                .await
                .unwrap();
            location(&response)
        }
    };
    // An attacker with a /64 to itself moves to a fresh address for every guess, and to a fresh
    // account name so no account lock is what stops it.
    for i in 1..=20 {
        let answer = sign_in_from(
            format!("2001:db8:bad:1::{i:x}"),
            format!("guess-{i}"),
            "not-the-password".into(),
        )
        .await;
        assert!(answer.starts_with("/login?error=invalid"), "{i}: {answer}");
    }
    let next_address = sign_in_from(
        "2001:db8:bad:1:ffff:ffff:ffff:fffe".into(),
        "vera".into(),
        password_of("vera"),
    )
    .await;
    assert!(
        next_address.starts_with("/login?error=throttled"),
        "the whole /64 is locked out: {next_address}"
    );
    let neighbour = sign_in_from(
        "2001:db8:bad:2::1".into(),
        "vera".into(),
        password_of("vera"),
    )
    .await;
    assert_eq!(neighbour, "/", "the next /64 is someone else");
}

/// The device cookie a response sets, whole (with its attributes).
fn device_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ctguard_device="))
}

#[tokio::test]
async fn a_browser_that_signed_in_before_keeps_its_way_in_while_an_attacker_locks_the_account() {
    let app = spawn_app().await;
    // The owner signed in from this browser yesterday and signed out; it keeps its device cookie.
    let owners_browser = app.browser();
    let first = app
        .sign_in(&owners_browser, "vera", &password_of("vera"))
        .await;
    let device = device_cookie(&first).expect("a device cookie at sign-in");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict"),
        "{device}"
    );
    app.post_form(&owners_browser, "/auth/logout", &[]).await;

    // An attacker behind the same address (one NAT, one proxy), with a device cookie of its own
    // for another account, locks the account (5 guesses) and then the address (20 failures).
    let attacker = app.signed_in(Role::Operator).await;
    for i in 0..20 {
        let name = if i < 5 {
            "vera".to_owned()
        } else {
            format!("someone-{i}")
        };
        let response = app.sign_in(&attacker, &name, "not-the-password").await;
        assert!(location(&response).starts_with("/login?error=invalid"));
    }
    for name in ["vera", "someone-new"] {
        let response = app.sign_in(&attacker, name, "not-the-password").await;
        assert!(
            location(&response).starts_with("/login?error=throttled"),
            "{name} from the attacker's address"
        );
    }
    let unknown_browser = app.browser();
    let response = app
        .sign_in(&unknown_browser, "vera", &password_of("vera"))
        .await;
    assert!(
        location(&response).starts_with("/login?error=throttled"),
        "an unknown browser waits, even with the password"
    );
    let response = app
        .sign_in(&owners_browser, "vera", &password_of("vera"))
        .await;
    assert_eq!(location(&response), "/", "the owner's browser gets in");
    assert!(
        device_cookie(&response).is_none(),
        "a known browser keeps its cookie"
    );
    assert_eq!(audited(&app, CHECKED_AND_WRONG).await, 20);
    assert_eq!(audited(&app, THROTTLED).await, 3);
}

/// The hashes the server reports running now (`/metrics`).
async fn password_checks_running(app: &TestApp) -> u64 {
    let (_, text) = app.get_text("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix("ctguard_password_checks_running "))
        .expect("the gauge is reported")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn clients_that_hang_up_leave_no_more_hashes_running_than_the_bound_and_are_audited() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    // Twenty guesses (the address's limit), each at its own name so no account lock stops them;
    // each client sends its whole request and hangs up without waiting for the answer.
    for i in 0..20 {
        let body = format!("username=hangs-up-{i}&password=not-the-password&next=%2F");
        let request = format!(
            "POST /auth/login HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n{body}",
            origin = app.origin(),
            length = body.len(),
        );
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        drop(stream);
    }

    // Some of them the server never read to the end: those were not attempts. The ones it counted
    // and the ordinary attempts that now top the address up to its limit of 20 must all be checked
    // and audited, the hung-up ones included.
    let mut most_running = 0;
    let mut topped_up = 0;
    loop {
        most_running = most_running.max(password_checks_running(&app).await);
        let name = format!("tops-up-{topped_up}");
        let response = app.sign_in(&app.browser(), &name, "not-the-password").await;
        if location(&response).starts_with("/login?error=throttled") {
            break;
        }
        topped_up += 1;
        assert!(topped_up <= 20, "the address is never locked");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while audited(&app, CHECKED_AND_WRONG).await < 20 {
        most_running = most_running.max(password_checks_running(&app).await);
        assert!(
            Instant::now() < deadline,
            "{} of the 20 counted attempts audited ({topped_up} of them topping up)",
            audited(&app, CHECKED_AND_WRONG).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        most_running <= 2,
        "{most_running} hashes ran at once; the bound is 2"
    );
    assert_eq!(audited(&app, CHECKED_AND_WRONG).await, 20);
    assert_eq!(audited(&app, THROTTLED).await, 1);
}

#[tokio::test]
async fn a_device_cookie_is_worth_nothing_after_ninety_days() {
    let app = spawn_app().await;
    let owners_browser = app.browser();
    let first = app
        .sign_in(&owners_browser, "vera", &password_of("vera"))
        .await;
    assert!(device_cookie(&first).is_some());
    app.clock.advance(90 * 24 * 60 * 60);

    // The attacker locks the account from the owner's address; the old cookie no longer helps.
    let attacker = app.browser();
    for i in 0..5 {
        app.sign_in(&attacker, "vera", &format!("guess number {i}"))
            .await;
    }
    let response = app
        .sign_in(&owners_browser, "vera", &password_of("vera"))
        .await;
    assert!(
        location(&response).starts_with("/login?error=throttled"),
        "{}",
        location(&response)
    );
}

/// The Users page's accounts, as an admin's browser asks for them: each name with the number of
/// sessions shown.
async fn sessions_shown(app: &TestApp, admin: &reqwest::Client) -> Vec<(String, usize)> {
    let response = app.post_form(admin, ListAccounts::PATH, &[]).await;
    assert_eq!(response.status(), 200);
    let accounts: Vec<Account> = response.json().await.unwrap();
    accounts
        .into_iter()
        .map(|account| (account.username, account.sessions.len()))
        .collect()
}

fn count_of(shown: &[(String, usize)], username: &str) -> usize {
    shown.iter().find(|(name, _)| name == username).unwrap().1
}

/// Every login row of `username`: (ended, end reason), oldest first.
async fn login_rows(app: &TestApp, username: &str) -> Vec<(bool, Option<String>)> {
    let pool = db::open(&app.database).await.unwrap();
    sqlx::query_as(
        "SELECT l.ended_at IS NOT NULL, l.end_reason FROM logins l JOIN users u ON u.id = l.user_id
         WHERE u.username = ? ORDER BY l.created_at, l.rowid",
    )
    .bind(username)
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn signing_in_again_from_the_same_browser_ends_the_login_before() {
    let app = spawn_app().await;
    let shared_desk = app.browser();
    let elsewhere = app.browser();
    app.sign_in(&elsewhere, "vera", &password_of("vera")).await;
    app.sign_in(&shared_desk, "vera", &password_of("vera"))
        .await;
    app.sign_in(&shared_desk, "vera", &password_of("vera"))
        .await;
    // A wrong password from the same browser ends nothing.
    app.sign_in(&shared_desk, "otto", "not-the-password").await;
    app.sign_in(&shared_desk, "otto", &password_of("otto"))
        .await;

    let again = Some("signed in again".to_owned());
    assert_eq!(
        login_rows(&app, "vera").await,
        [(false, None), (true, again.clone()), (true, again)],
        "vera's other browser keeps its login; the shared desk's two ended as it signed in again"
    );
    assert_eq!(login_rows(&app, "otto").await, [(false, None)]);
    let admin = app.signed_in(Role::Admin).await;
    let shown = sessions_shown(&app, &admin).await;
    assert_eq!(count_of(&shown, "vera"), 1);
    assert_eq!(count_of(&shown, "otto"), 1);
    assert_eq!(support::live_status(&app, &elsewhere).await, 200);
    assert_eq!(support::live_status(&app, &shared_desk).await, 200);
}

#[tokio::test]
async fn expired_logins_are_swept_and_the_users_page_counts_only_live_sessions() {
    let app = spawn_app().await;
    // vera leaves two browsers signed in and never comes back; otto stays busy all day.
    app.signed_in(Role::Viewer).await;
    app.signed_in(Role::Viewer).await;
    let otto = app.signed_in(Role::Operator).await;
    let policy = ctguard_server::auth::SessionPolicy::default();
    let step = i64::try_from(policy.idle.as_secs()).unwrap() * 2 / 3;
    let mut busy_for = 0;
    while busy_for + step < i64::try_from(policy.absolute.as_secs()).unwrap() {
        app.clock.advance(step);
        busy_for += step;
        assert_eq!(support::live_status(&app, &otto).await, 200);
    }
    // Past otto's absolute lifetime (within his idle timeout), before anything of his asks again.
    app.clock.advance(step);

    let admin = app.signed_in(Role::Admin).await;
    let shown = sessions_shown(&app, &admin).await;
    assert_eq!(count_of(&shown, "vera"), 0, "{shown:?}");
    assert_eq!(count_of(&shown, "otto"), 0, "{shown:?}");
    assert_eq!(count_of(&shown, "ada"), 1, "{shown:?}");
    let idle = Some("idle timeout".to_owned());
    assert_eq!(
        login_rows(&app, "vera").await,
        [(true, idle.clone()), (true, idle)]
    );
    assert_eq!(
        login_rows(&app, "otto").await,
        [(true, Some("absolute lifetime".to_owned()))]
    );
}

#[tokio::test]
async fn a_browser_that_never_comes_back_has_its_login_swept_without_anyone_asking() {
    let app = spawn_app_on_the_system_clock(|settings| settings.session.idle = IDLE).await;
    sign_in(&app).await;
    assert_eq!(login_rows(&app, "vera").await, [(false, None)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while login_rows(&app, "vera").await != [(true, Some("idle timeout".to_owned()))] {
        assert!(
            Instant::now() < deadline,
            "still active: {:?}",
            login_rows(&app, "vera").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
