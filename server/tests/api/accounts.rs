//! Signing in, staying signed in, and being refused: sessions, roles, throttling and the
//! cross-origin guard, through real HTTP against a real SQLite database.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    admin::users::{ApplyUserChange, PreviewUserChange},
    auth::{Permission, Role},
};
use ctguard_server::{
    audit::AuditStore,
    auth::authorize::{Access, routes},
    db,
};
use leptos::server_fn::ServerFn;
use serde_json::json;
use support::{
    account_of, cookie_value, live_status, location, password_of, session_cookie, spawn_app,
    spawn_app_with, with_cookie,
};

fn disable(username: &str) -> serde_json::Value {
    json!({ "kind": "set_disabled", "username": username, "disabled": true })
}

#[tokio::test]
async fn pages_redirect_strangers_to_the_login_page_and_back() {
    let app = spawn_app().await;
    let stranger = app.browser();
    let response = app.get(&stranger, "/users").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?next=/users");
    assert_eq!(live_status(&app, &stranger).await, 401);

    let login_page = app.get(&stranger, "/login").await;
    assert_eq!(login_page.status(), 200);
    let html = login_page.text().await.unwrap();
    assert!(html.contains(r#"action="/auth/login""#));
    assert!(html.contains(r#"autocomplete="current-password""#));
}

#[tokio::test]
async fn signing_in_issues_a_new_session_id_and_the_old_one_stops_working() {
    let app = spawn_app().await;
    let browser = app.browser();
    let first = app.sign_in(&browser, "vera", &password_of("vera")).await;
    assert_eq!(location(&first), "/");
    let first_cookie = cookie_value(&session_cookie(&first).expect("a session cookie"));

    // Signing in again (another tab, or an attacker's fixated session) rotates the id.
    let second = app.sign_in(&browser, "vera", &password_of("vera")).await;
    let second_cookie = cookie_value(&session_cookie(&second).expect("a new cookie"));
    assert_ne!(first_cookie, second_cookie);

    assert_eq!(live_status(&app, &with_cookie(&second_cookie)).await, 200);
    assert_eq!(
        live_status(&app, &with_cookie(&first_cookie)).await,
        401,
        "the id from before is worthless"
    );
}

#[tokio::test]
async fn session_cookies_are_http_only_same_site_strict() {
    let app = spawn_app().await;
    let response = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    let cookie = session_cookie(&response).unwrap();
    assert!(cookie.starts_with("ctguard_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");

    let tls = spawn_app_with(|settings| settings.session.secure_cookies = true).await;
    let response = tls
        .sign_in(&tls.browser(), "vera", &password_of("vera"))
        .await;
    let cookie = session_cookie(&response).unwrap();
    assert!(cookie.starts_with("__Host-ctguard_session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(
        !cookie.contains("Domain="),
        "__Host- cookies have no domain"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_even_for_a_copied_cookie() {
    let app = spawn_app().await;
    let browser = app.browser();
    let response = app.sign_in(&browser, "vera", &password_of("vera")).await;
    let cookie = cookie_value(&session_cookie(&response).unwrap());
    let out = app.post_form(&browser, "/auth/logout", &[]).await;
    assert_eq!(location(&out), "/login?signed_out=1");
    assert_eq!(live_status(&app, &browser).await, 401);
    assert_eq!(live_status(&app, &with_cookie(&cookie)).await, 401);
}

#[tokio::test]
async fn sessions_end_after_thirty_idle_minutes() {
    let app = spawn_app().await;
    let viewer = app.signed_in(Role::Viewer).await;
    app.clock.advance(29 * 60);
    assert_eq!(live_status(&app, &viewer).await, 200, "still active");
    app.clock.advance(29 * 60);
    assert_eq!(
        live_status(&app, &viewer).await,
        200,
        "activity reset the idle timer"
    );
    app.clock.advance(30 * 60);
    assert_eq!(live_status(&app, &viewer).await, 401, "idle too long");
}

#[tokio::test]
async fn sessions_end_eight_hours_after_sign_in_however_active() {
    let app = spawn_app().await;
    let viewer = app.signed_in(Role::Viewer).await;
    for _ in 0..31 {
        app.clock.advance(15 * 60);
        assert_eq!(live_status(&app, &viewer).await, 200);
    }
    // 7 h 45 min so far; the next quarter hour crosses 8 h.
    app.clock.advance(15 * 60);
    assert_eq!(live_status(&app, &viewer).await, 401);
}

/// Every route of the permission table, with every role and none: allowed exactly when the role
/// reaches the route's minimum; forbidden with 403 (401 or a redirect to login when signed out).
#[tokio::test]
async fn the_role_matrix_holds_for_every_route() {
    let app = spawn_app().await;
    let mut clients = vec![(None, app.browser())];
    for role in Role::ALL {
        clients.push((Some(role), app.signed_in(role).await));
    }
    for route in routes() {
        // Signing out would end the sessions the rest of the matrix needs; it is public anyway.
        if route.path == "/auth/logout" {
            continue;
        }
        for (role, client) in &clients {
            let request = client
                .request(
                    route.method.clone(),
                    format!("{}{}", app.address, route.path),
                )
                .header("origin", app.origin())
                .header("accept", "text/html");
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let to_login = location(&response).starts_with("/login");
            let allowed = match (route.access, role) {
                (Access::Public, _) => true,
                (Access::Requires(_), None) => false,
                (Access::Requires(action), Some(role)) => *role >= action.minimum_role(),
            };
            let refused = status == 401 || status == 403 || to_login;
            assert_eq!(
                !refused, allowed,
                "{} {} as {role:?}: status {status}",
                route.method, route.path
            );
            if !allowed && role.is_some() {
                assert_eq!(status, 403, "{} {} as {role:?}", route.method, route.path);
            }
        }
    }
}

#[tokio::test]
async fn a_cross_origin_post_with_a_valid_cookie_is_refused() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let token = app.preview_user_change(&admin, disable("vera")).await;
    let path = format!("{}{}", app.address, ApplyUserChange::PATH);
    let body = json!({ "token": token, "change": disable("vera") });

    let forged = admin
        .post(&path)
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let anonymous_origin = admin.post(&path).json(&body).send().await.unwrap();
    assert_eq!(
        anonymous_origin.status(),
        403,
        "no Origin, no Sec-Fetch-Site"
    );
    let hidden_origin = admin
        .post(&path)
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        hidden_origin.status(),
        403,
        "a hidden origin from another site"
    );

    // Nothing changed: vera still signs in.
    let vera = app.browser();
    let response = app.sign_in(&vera, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/");
}

#[tokio::test]
async fn repeated_failures_throttle_the_account_which_then_recovers() {
    let app = spawn_app().await;
    let attacker = app.browser();
    for _ in 0..5 {
        let response = app.sign_in(&attacker, "vera", "not-the-password").await;
        assert!(location(&response).starts_with("/login?error=invalid"));
    }
    // Now even the right password waits.
    let owner = app.browser();
    let response = app.sign_in(&owner, "vera", &password_of("vera")).await;
    assert!(
        location(&response).starts_with("/login?error=throttled"),
        "{}",
        location(&response)
    );
    // From the attacker's address the lock is hard: a quarter of an hour.
    app.clock.advance(61);
    let response = app.sign_in(&owner, "vera", &password_of("vera")).await;
    assert!(location(&response).starts_with("/login?error=throttled"));
    app.clock.advance(15 * 60);
    let response = app.sign_in(&owner, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/", "recovered after the lock");
}

#[tokio::test]
async fn unknown_and_known_usernames_are_refused_alike() {
    let app = spawn_app().await;
    let unknown = app
        .sign_in(&app.browser(), "nobody-here", "whatever-password")
        .await;
    let known = app
        .sign_in(&app.browser(), "vera", "whatever-password")
        .await;
    assert_eq!(unknown.status(), known.status());
    assert_eq!(location(&unknown), location(&known));
    assert_eq!(unknown.text().await.unwrap(), known.text().await.unwrap());

    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let records = audit.recent(10).await.unwrap();
    for name in ["nobody-here", "vera"] {
        assert!(
            records.iter().any(|r| r.action == "login"
                && r.outcome == "refused"
                && r.actor.as_deref() == Some(name)),
            "the failure for {name} is audited"
        );
    }
}

#[tokio::test]
async fn disabling_a_user_or_changing_their_role_ends_their_sessions() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let viewer = app.signed_in(Role::Viewer).await;
    let operator = app.signed_in(Role::Operator).await;
    assert_eq!(live_status(&app, &viewer).await, 200);

    let disable = app
        .change_user(&admin, disable(account_of(Role::Viewer)))
        .await;
    assert_eq!(disable.status(), 200);
    assert_eq!(live_status(&app, &viewer).await, 401);
    let again = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    assert!(
        location(&again).starts_with("/login?error=invalid"),
        "a disabled user cannot sign in"
    );

    let role = app
        .change_user(
            &admin,
            json!({ "kind": "set_role", "username": account_of(Role::Operator), "role": "viewer" }),
        )
        .await;
    assert_eq!(role.status(), 200);
    assert_eq!(live_status(&app, &operator).await, 401);

    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let records = audit.recent(50).await.unwrap();
    assert!(records.iter().any(|r| r.action == "user.disable"
        && r.actor.as_deref() == Some("ada")
        && r.target.as_deref() == Some("vera")
        && r.outcome == "success"));
    assert!(records.iter().any(|r| r.action == "user.role"
        && r.target.as_deref() == Some("otto")
        && r.outcome == "success"));
}

#[tokio::test]
async fn an_operator_cannot_manage_users_even_by_direct_request() {
    let app = spawn_app().await;
    let operator = app.signed_in(Role::Operator).await;
    let response = app
        .post_json(
            &operator,
            PreviewUserChange::PATH,
            &json!({ "change": disable("ada") }),
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(!Role::Operator.ge(&Permission::ManageUsers.minimum_role()));
    let admin = app.browser();
    let signed = app.sign_in(&admin, "ada", &password_of("ada")).await;
    assert_eq!(location(&signed), "/", "ada was not disabled");
}

#[tokio::test]
async fn pages_carry_a_nonce_csp_and_the_other_security_headers() {
    let app = spawn_app().await;
    let viewer = app.signed_in(Role::Viewer).await;
    let page = app.get(&viewer, "/").await;
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the CSP");
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries it"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("'unsafe-inline' ") && !csp.contains("script-src 'unsafe-inline'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "no CORS"
    );

    let events = viewer
        .get(format!("{}/api/live", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn the_command_line_adds_users_who_can_then_sign_in() {
    let app = spawn_app().await;
    // The command runs off the test's runtime: blocking it would also freeze the server under test.
    let database = app.database.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-server"))
            .args(["user", "--database"])
            .arg(&database)
            .args([
                "add",
                "Night-Shift",
                "--role",
                "operator",
                "--password-stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .output_with_stdin("a long enough password\n")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = app
        .sign_in(&app.browser(), "night-shift", "a long enough password")
        .await;
    assert_eq!(location(&response), "/");
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

async fn is_disabled(app: &support::TestApp, username: &str) -> bool {
    ctguard_server::users::UserStore::new(db::open(&app.database).await.unwrap())
        .find(username)
        .await
        .unwrap()
        .unwrap()
        .disabled
}

async fn apply(
    app: &support::TestApp,
    client: &reqwest::Client,
    token: &str,
    change: serde_json::Value,
) -> (u16, String) {
    let response = app
        .post_json(
            client,
            ApplyUserChange::PATH,
            &json!({ "token": token, "change": change }),
        )
        .await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_preview_changes_nothing_and_its_token_works_once() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let response = app
        .post_json(
            &admin,
            PreviewUserChange::PATH,
            &json!({ "change": disable("vera") }),
        )
        .await;
    let preview: ctguard_app::confirm::Preview = response.json().await.unwrap();
    assert_eq!(preview.title, "Disable vera");
    assert_eq!(
        preview.changes,
        ["state: active → disabled", "no session to end"]
    );
    assert!(
        !is_disabled(&app, "vera").await,
        "a preview (or a cancel) changes nothing"
    );

    let (status, _) = apply(&app, &admin, &preview.token, disable("vera")).await;
    assert_eq!(status, 200);
    assert!(is_disabled(&app, "vera").await);
    let (status, body) = apply(&app, &admin, &preview.token, disable("vera")).await;
    assert_ne!(status, 200, "replayed");
    assert!(
        body.contains("already used") || body.contains("already disabled"),
        "{body}"
    );
}

#[tokio::test]
async fn expired_tampered_foreign_and_stale_confirmations_are_refused_and_audited() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;

    // Expired.
    let token = app.preview_user_change(&admin, disable("vera")).await;
    app.clock.advance(121);
    let (status, body) = apply(&app, &admin, &token, disable("vera")).await;
    assert_ne!(status, 200);
    assert!(body.contains("expired"), "{body}");

    // Tampered: the token of one change presented with another.
    let token = app.preview_user_change(&admin, disable("vera")).await;
    let (status, body) = apply(&app, &admin, &token, disable("otto")).await;
    assert_ne!(status, 200);
    assert!(body.contains("different change"), "{body}");

    // Another session of the same admin.
    let token = app.preview_user_change(&admin, disable("vera")).await;
    let other_tab = app.signed_in(Role::Admin).await;
    let (status, body) = apply(&app, &other_tab, &token, disable("vera")).await;
    assert_ne!(status, 200);
    assert!(body.contains("another session"), "{body}");

    // Stale: the state changed between preview and confirm.
    let role_change = json!({ "kind": "set_role", "username": "vera", "role": "operator" });
    let token = app.preview_user_change(&admin, role_change.clone()).await;
    let meanwhile = app
        .change_user(
            &admin,
            json!({ "kind": "set_role", "username": "vera", "role": "admin" }),
        )
        .await;
    assert_eq!(meanwhile.status(), 200);
    let (status, body) = apply(&app, &admin, &token, role_change).await;
    assert_ne!(status, 200);
    assert!(body.contains("state changed"), "{body}");

    assert!(!is_disabled(&app, "vera").await && !is_disabled(&app, "otto").await);
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let refusals: Vec<_> = audit
        .recent(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome == "refused" && r.actor.as_deref() == Some("ada"))
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    assert!(
        refusals.iter().all(|r| r.preview.is_some()),
        "each with what was previewed"
    );
}

/// vera's role and whether she is disabled, as the database holds them.
async fn veras_state(app: &support::TestApp) -> (String, bool) {
    let pool = db::open(&app.database).await.unwrap();
    sqlx::query_as("SELECT role, disabled FROM users WHERE username = 'vera'")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_previews_of_one_account_confirmed_at_once_change_it_once() {
    let app = spawn_app().await;
    let ada_here = app.signed_in(Role::Admin).await;
    let ada_there = app.signed_in(Role::Admin).await;
    // Rounds, since nothing here slows the change down: one lost race is enough.
    for _ in 0..20 {
        // Both previewed from the same state.
        let (role, disabled) = veras_state(&app).await;
        let other_role = if role == "viewer" {
            "operator"
        } else {
            "viewer"
        };
        let set_role = json!({ "kind": "set_role", "username": "vera", "role": other_role });
        let toggle = json!({ "kind": "set_disabled", "username": "vera", "disabled": !disabled });
        let role_token = app.preview_user_change(&ada_here, set_role.clone()).await;
        let toggle_token = app.preview_user_change(&ada_there, toggle.clone()).await;

        let (first, second) = tokio::join!(
            apply(&app, &ada_here, &role_token, set_role),
            apply(&app, &ada_there, &toggle_token, toggle),
        );
        let applied = [&first, &second].iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(applied, 1, "exactly one of them: {first:?} {second:?}");
        let refused = if first.0 == 200 { &second } else { &first };
        assert!(refused.1.contains("changed"), "{refused:?}");
        let expected = if first.0 == 200 {
            (other_role.to_owned(), disabled)
        } else {
            (role, !disabled)
        };
        assert_eq!(veras_state(&app).await, expected);
    }
}

#[tokio::test]
async fn an_account_change_that_cannot_be_audited_is_not_made() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let vera = app.signed_in(Role::Viewer).await;
    let token = app.preview_user_change(&admin, disable("vera")).await;
    support::break_the_audit_log(&app).await;
    let response = app
        .post_json(
            &admin,
            ApplyUserChange::PATH,
            &json!({ "token": token, "change": disable("vera") }),
        )
        .await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("Nothing was changed"), "{text}");
    let pool = db::open(&app.database).await.unwrap();
    let disabled: bool = sqlx::query_scalar("SELECT disabled FROM users WHERE username = 'vera'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!disabled, "vera's account is as it was");
    assert_eq!(
        live_status(&app, &vera).await,
        200,
        "and her session goes on"
    );
}

#[tokio::test]
async fn a_sign_in_that_cannot_be_audited_is_refused() {
    let app = spawn_app().await;
    support::break_the_audit_log(&app).await;
    let browser = app.browser();
    let response = app.sign_in(&browser, "vera", &password_of("vera")).await;
    assert!(
        location(&response).starts_with("/login"),
        "back to the form: {}",
        location(&response)
    );
    assert_eq!(live_status(&app, &browser).await, 401, "not signed in");
    let pool = db::open(&app.database).await.unwrap();
    let logins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM logins")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(logins, 0, "no login was created");
}
