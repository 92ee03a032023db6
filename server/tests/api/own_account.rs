//! Each user's own account, through real HTTP against the real cookie and session store: changing
//! one's password (the old one checked and throttled, common and short ones refused, the other
//! sessions ended), and seeing and ending one's own sessions, never another's. Refusals are
//! audited.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    account::{ChangeOwnPassword, EndOwnSession, MyAccount, OwnAccount},
    auth::Role,
};
use ctguard_server::db;
use leptos::server_fn::ServerFn;
use serde_json::json;
use support::{TestApp, live_status, location, password_of, spawn_app};

async fn my_account(app: &TestApp, client: &reqwest::Client) -> OwnAccount {
    let response = app.post_form(client, MyAccount::PATH, &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn change_password(
    app: &TestApp,
    client: &reqwest::Client,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.post_json(
        client,
        ChangeOwnPassword::PATH,
        &json!({ "current": current, "new": new }),
    )
    .await
}

async fn end_session(app: &TestApp, client: &reqwest::Client, id: &str) -> reqwest::Response {
    app.post_json(client, EndOwnSession::PATH, &json!({ "session_id": id }))
        .await
}

async fn audit_count(app: &TestApp, action: &str, outcome: &str) -> i64 {
    let pool = db::open(&app.database).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE action = ? AND outcome = ?")
        .bind(action)
        .bind(outcome)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_changes_their_password_and_their_other_sessions_end() {
    let app = spawn_app().await;
    let here = app.signed_in(Role::Viewer).await;
    let elsewhere = app.signed_in(Role::Viewer).await;
    let other_user = app.signed_in(Role::Operator).await;
    let new = "a long and quiet river";

    let wrong = change_password(&app, &here, "not my password", new).await;
    assert_eq!(wrong.status(), 400, "the old password is checked");
    assert!(wrong.text().await.unwrap().contains("current password"));
    // From the crate's list of common passwords, long enough for the length rule.
    let common = change_password(&app, &here, &password_of("vera"), "password1234").await;
    assert_eq!(common.status(), 400);
    assert!(common.text().await.unwrap().contains("common"));
    let short = change_password(&app, &here, &password_of("vera"), "too short").await;
    assert_eq!(short.status(), 400);
    assert!(short.text().await.unwrap().contains("at least 12"));
    assert_eq!(audit_count(&app, "password.change", "refused").await, 3);
    assert_eq!(live_status(&app, &elsewhere).await, 200, "nothing changed");

    let changed = change_password(&app, &here, &password_of("vera"), new).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.json::<u64>().await.unwrap(), 1, "one other session");
    assert_eq!(live_status(&app, &here).await, 200, "this one goes on");
    assert_eq!(live_status(&app, &elsewhere).await, 401, "the other ended");
    assert_eq!(live_status(&app, &other_user).await, 200, "nobody else's");
    assert_eq!(audit_count(&app, "password.change", "success").await, 1);

    let old = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    assert!(location(&old).contains("error=invalid"), "the old password");
    let fresh = app.sign_in(&app.browser(), "vera", new).await;
    assert_eq!(location(&fresh), "/");
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_signing_in() {
    let app = spawn_app().await;
    let thief = app.signed_in(Role::Viewer).await;
    for _ in 0..5 {
        let response =
            change_password(&app, &thief, "a guess of mine", "a long and quiet river").await;
        assert_eq!(response.status(), 400);
    }
    let response =
        change_password(&app, &thief, &password_of("vera"), "a long and quiet river").await;
    assert_eq!(
        response.status(),
        429,
        "locked: not even the right one is checked"
    );
    let response = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    assert!(
        location(&response).contains("error=throttled"),
        "the same count"
    );
}

#[tokio::test]
async fn every_user_sees_and_ends_their_own_sessions_and_no_one_elses() {
    let app = spawn_app().await;
    let here = app.signed_in(Role::Viewer).await;
    let elsewhere = app.signed_in(Role::Viewer).await;
    let otto = app.signed_in(Role::Operator).await;

    let account = my_account(&app, &here).await;
    assert_eq!(account.username, "vera");
    assert_eq!(account.sessions.len(), 2, "vera's two, not otto's");
    assert_eq!(account.sessions.iter().filter(|s| s.current).count(), 1);
    assert!(
        account
            .sessions
            .iter()
            .all(|s| s.client_addr == "127.0.0.1")
    );
    let other = account.sessions.iter().find(|s| !s.current).unwrap();

    // Otto's session id, as an attacker who learnt it would send it.
    let ottos = my_account(&app, &otto).await.sessions[0].id.clone();
    let refused = end_session(&app, &here, &ottos).await;
    assert_eq!(refused.status(), 400, "another user's session");
    assert_eq!(live_status(&app, &otto).await, 200, "it goes on");
    assert_eq!(audit_count(&app, "session.end_own", "refused").await, 1);

    let ended = end_session(&app, &here, &other.id).await;
    assert_eq!(ended.status(), 200);
    assert_eq!(
        live_status(&app, &elsewhere).await,
        401,
        "ended in the store: its cookie is worthless"
    );
    let pool = db::open(&app.database).await.unwrap();
    let reason: Option<String> = sqlx::query_scalar("SELECT end_reason FROM logins WHERE id = ?")
        .bind(&other.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("ended by its user"));
    assert_eq!(my_account(&app, &here).await.sessions.len(), 1);
    assert_eq!(audit_count(&app, "session.end_own", "success").await, 1);

    let again = end_session(&app, &here, &other.id).await;
    assert_eq!(again.status(), 400, "already ended");
}

#[tokio::test]
async fn strangers_reach_no_account() {
    let app = spawn_app().await;
    let stranger = app.browser();
    let response = app.post_form(&stranger, MyAccount::PATH, &[]).await;
    assert_eq!(response.status(), 401);
    let response = change_password(&app, &stranger, "x", "a long and quiet river").await;
    assert_eq!(response.status(), 401);
    let response = end_session(&app, &stranger, "0123456789abcdef").await;
    assert_eq!(response.status(), 401);
    let page = app.get(&stranger, "/account").await;
    assert_eq!(location(&page), "/login?next=/account");
}

#[tokio::test]
async fn the_account_page_and_the_code_step_render_on_the_server() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let page = app.get(&vera, "/account").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Your account"), "{html}");
    let code_step = app.get(&app.browser(), "/login?step=code").await;
    assert_eq!(code_step.status(), 200);
    let html = code_step.text().await.unwrap();
    assert!(html.contains(r#"action="/auth/second-factor""#), "{html}");
    assert!(html.contains(r#"autocomplete="one-time-code""#));
}
