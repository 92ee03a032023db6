//! Default deny (issue 13, item 10), through real HTTP against the real cookie and session store:
//! every endpoint the server registers has a row in the route table and every row an endpoint; a
//! method or path the table does not list is refused, signed in or not; dot segments in any
//! spelling are refused before routing (sent raw, as no browser would send them); and nothing a
//! stranger can send makes a handler panic.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    admin::users::ApplyUserChange, auth::Role, dashboard::LoadDashboard, session::CurrentUserQuery,
};
use ctguard_server::{
    auth::authorize::{access, routes},
    startup::registered_endpoints,
};
use leptos::server_fn::ServerFn;
use support::{TestApp, session_cookie, spawn_app};

#[tokio::test]
async fn every_endpoint_the_server_registers_has_a_row_in_the_route_table_and_every_row_an_endpoint()
 {
    let registered = registered_endpoints();
    let server_functions = registered
        .iter()
        .filter(|(_, path)| path.starts_with("/api/") && path != "/api/live")
        .count();
    assert!(
        server_functions >= 15,
        "the enumeration sees the app's server functions: {registered:?}"
    );
    for (method, path) in &registered {
        assert!(
            access(method, path).is_ok(),
            "{method} {path} is served but has no row in the route table"
        );
    }
    for row in routes() {
        assert!(
            registered
                .iter()
                .any(|(method, path)| *method == row.method && *path == row.path),
            "{} {} has a row but nothing serves it",
            row.method,
            row.path
        );
    }
}

/// The session cookie of a fresh sign-in of `role`'s account, as a raw request sends it.
async fn cookie_of(app: &TestApp, role: Role) -> String {
    let name = support::account_of(role);
    let response = app
        .sign_in(&app.browser(), name, &support::password_of(name))
        .await;
    format!(
        "cookie: {}",
        support::cookie_value(&session_cookie(&response).unwrap())
    )
}

#[tokio::test]
async fn what_the_route_table_does_not_list_is_refused_signed_in_or_not() {
    let app = spawn_app().await;
    let admin = cookie_of(&app, Role::Admin).await;
    let origin = format!("origin: {}", app.origin());
    let html = "accept: text/html";
    for who in [None, Some(admin.as_str())] {
        let headers: Vec<&str> = [Some(origin.as_str()), Some(html), who]
            .into_iter()
            .flatten()
            .collect();
        for (method, target, status) in [
            ("GET", "/no/such/page", 404),
            ("GET", "/users/", 404),
            ("GET", "//users", 404),
            ("GET", "/api/", 404),
            ("POST", "/api/no_such_function", 404),
            ("GET", "/pkg", 404),
            ("DELETE", "/users", 405),
            ("POST", "/", 405),
            ("PUT", "/auth/login", 405),
            ("GET", "/auth/logout", 405),
            ("OPTIONS", "/api/live", 405),
            // Server functions are POSTs only.
            ("GET", CurrentUserQuery::PATH, 405),
            ("POST", "/pkg/ctguard.js", 405),
        ] {
            let answer = app.raw_request(method, target, &headers, "").await;
            assert_eq!(
                answer.status,
                status,
                "{method} {target} signed in: {}",
                who.is_some()
            );
            assert!(
                !answer.body.contains("<html") && !answer.body.contains("<!DOCTYPE"),
                "{method} {target}: refused before the app rendered anything"
            );
        }
    }
    let answer = app.raw_request("DELETE", "/users", &[&admin], "").await;
    assert!(
        answer.headers.contains("\r\nallow: get"),
        "{}",
        answer.headers
    );
    // What the table lists still works: the admin's pages, a viewer's too.
    let answer = app.raw_request("GET", "/users", &[&admin, html], "").await;
    assert_eq!(answer.status, 200);
    let viewer = cookie_of(&app, Role::Viewer).await;
    let answer = app
        .raw_request("GET", "/tuning", &[&viewer, html], "")
        .await;
    assert_eq!(answer.status, 200, "the tuning page has its row");
}

#[tokio::test]
async fn dot_segments_are_refused_before_routing_and_static_files_are_still_served() {
    let app = spawn_app().await;
    let site = app.dir.path().join("site/pkg");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("probe.js"), "// the same for everyone\n").unwrap();
    let viewer = cookie_of(&app, Role::Viewer).await;
    for who in [None, Some(viewer.as_str())] {
        let headers: Vec<&str> = ["accept: text/html"].into_iter().chain(who).collect();
        for target in [
            "/pkg/../",
            "/pkg/..",
            "/pkg/%2e%2e/",
            "/pkg/%2E%2E/users",
            "/pkg/.%2e/users",
            "/pkg/../users",
            "/pkg/../pkg/probe.js",
            "/pkg/./probe.js",
            "/pkg/%2e/probe.js",
            "/./",
            "/users/.",
            "/%2e%2e/users",
            "/pkg/..%2fusers",
            "/pkg/..%5cusers",
            "/pkg/..\\users",
        ] {
            let answer = app.raw_request("GET", target, &headers, "").await;
            assert_eq!(answer.status, 400, "{target} signed in: {}", who.is_some());
        }
        let answer = app.raw_request("GET", "/pkg/probe.js", &headers, "").await;
        assert_eq!(answer.status, 200);
        assert!(answer.body.contains("the same for everyone"));
        let answer = app.raw_request("HEAD", "/pkg/probe.js", &headers, "").await;
        assert_eq!(answer.status, 200);
        let answer = app
            .raw_request("GET", "/pkg/missing.js", &headers, "")
            .await;
        assert_eq!(answer.status, 404);
    }
}

#[tokio::test]
async fn nothing_a_stranger_can_send_makes_the_server_fail() {
    let app = spawn_app().await;
    let origin = format!("origin: {}", app.origin());
    let form = "content-type: application/x-www-form-urlencoded";
    let json = "content-type: application/json";
    let html = "accept: text/html";
    let requests: &[(&str, &str, &[&str], &str)] = &[
        ("GET", "/pkg/../", &[html], ""),
        ("GET", "/pkg/", &[html], ""),
        ("GET", "/pkg/snippets/", &[html], ""),
        ("GET", "/pkg/missing.wasm", &[html], ""),
        ("GET", "/favicon.svg", &[html], ""),
        ("HEAD", "/", &[html], ""),
        ("GET", "/", &[], ""),
        ("GET", "/login", &[html], ""),
        ("GET", "/login?next=%ff%fe&error=%00", &[html], ""),
        (
            "GET",
            "/login?next=/pkg/../users&error=throttled",
            &[html],
            "",
        ),
        ("GET", "/metrics", &[], ""),
        ("GET", "/api/live", &[], ""),
        ("POST", "/auth/login", &[&origin, form], ""),
        (
            "POST",
            "/auth/login",
            &[&origin, form],
            "username=%ff&password",
        ),
        ("POST", "/auth/login", &[&origin, json], "{\"username\": 1}"),
        ("POST", "/auth/logout", &[&origin], ""),
        ("POST", CurrentUserQuery::PATH, &[&origin, form], ""),
        ("POST", LoadDashboard::PATH, &[&origin, json], "{}"),
        ("POST", ApplyUserChange::PATH, &[&origin, json], "{}"),
        ("GET", "/audit.csv?from=%ff", &[], ""),
        ("GET", "*", &[], ""),
    ];
    for &(method, target, headers, body) in requests {
        let answer = app.raw_request(method, target, headers, body).await;
        assert!(
            answer.status < 500,
            "{method} {target} {body:?}: {}",
            answer.status
        );
    }
    // Bodies the server-function framework cannot parse: it answers 500 with its parse error (no
    // internal text; its status is its own), but it answers.
    for body in ["\u{0}\u{1}", "[[[[[[", "{\"a\": 1e999999}"] {
        app.raw_request("POST", CurrentUserQuery::PATH, &[&origin, json], body)
            .await;
    }
    assert_eq!(app.get_text("/login").await.0, 200, "still serving");
}
