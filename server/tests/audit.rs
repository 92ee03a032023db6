//! The audit log for admins: the Audit page, its server function and the CSV export, through real
//! HTTP against a real SQLite database — who may read it, what the filters select, and that the
//! export is a spreadsheet-safe CSV of the records.

#![allow(clippy::unwrap_used)]

mod support;

use ctguard_app::{
    audit::{AuditPage, JournalReport, JournalStatus, QueryAudit},
    auth::Role,
    operations::{ApplyOperation, PreviewOperation},
};
use ctguard_server::{
    audit::{AuditEvent, AuditStore, Outcome},
    client::ClientInfo,
    clock::Clock,
    db,
};
use leptos::server_fn::ServerFn;
use serde_json::json;
use support::{TestApp, body, password_of, spawn_app};

async fn query(app: &TestApp, client: &reqwest::Client, query: serde_json::Value) -> AuditPage {
    let response = app
        .post_json(client, QueryAudit::PATH, &json!({ "query": query }))
        .await;
    assert_eq!(response.status(), 200, "the audit query is answered");
    response.json().await.unwrap()
}

/// The export's rows as header name → cell maps.
async fn export(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
) -> Vec<Vec<(String, String)>> {
    let response = app.get(client, &format!("/audit.csv{query}")).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("text/csv"), "a CSV");
    assert!(
        header("content-disposition").starts_with("attachment; filename="),
        "a download"
    );
    let body = response.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_ref());
    let names: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|row| {
            names
                .iter()
                .cloned()
                .zip(row.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

#[tokio::test]
async fn viewers_and_operators_are_refused_the_page_the_function_and_the_export() {
    let app = spawn_app().await;
    for role in [Role::Viewer, Role::Operator] {
        let client = app.signed_in(role).await;
        assert_eq!(
            app.get(&client, "/audit").await.status(),
            403,
            "{role} page"
        );
        let function = app
            .post_json(&client, QueryAudit::PATH, &json!({ "query": {} }))
            .await;
        assert_eq!(function.status(), 403, "{role} server function");
        assert_eq!(
            app.get(&client, "/audit.csv").await.status(),
            403,
            "{role} export"
        );
    }
    let admin = app.signed_in(Role::Admin).await;
    assert_eq!(app.get(&admin, "/audit").await.status(), 200);
}

#[tokio::test]
async fn the_admin_sees_the_audit_link_and_the_page_lists_records() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let html = body(app.get(&admin, "/audit").await).await;
    assert!(
        html.contains(r#"href="/audit""#),
        "the nav links to the Audit page"
    );
    assert!(html.contains("Audit log"));
    assert!(
        html.contains(r#"for="audit-actor""#),
        "the filter fields are labelled"
    );
    // The records arrive when their resource resolves, after the page's first chunk.
    assert!(
        html.contains(r#"data-testid="audit""#) && html.contains(r#"data-outcome="success""#),
        "the records are listed: {html}"
    );
    let viewer = app.signed_in(Role::Viewer).await;
    let home = body(app.get(&viewer, "/").await).await;
    assert!(
        !home.contains(r#"href="/audit""#),
        "viewers get no Audit link"
    );
}

#[tokio::test]
async fn filters_select_by_user_action_outcome_and_time_newest_first() {
    let app = spawn_app().await;
    let start = app.clock.now();
    app.signed_in(Role::Viewer).await;
    app.clock.advance(3600);
    app.sign_in(&app.browser(), "otto", "not-the-password")
        .await;
    let admin = app.signed_in(Role::Admin).await;

    let all = query(&app, &admin, json!({})).await;
    let actors: Vec<_> = all
        .entries
        .iter()
        .map(|e| e.actor.clone().unwrap())
        .collect();
    assert_eq!(actors, ["ada", "otto", "vera"], "newest first");

    let vera = query(&app, &admin, json!({ "filter": { "actor": "vera" } })).await;
    assert_eq!(vera.entries.len(), 1);
    assert_eq!(vera.entries[0].outcome, "success");

    let refused = query(&app, &admin, json!({ "filter": { "outcome": "refused" } })).await;
    assert_eq!(refused.entries.len(), 1);
    assert_eq!(refused.entries[0].actor.as_deref(), Some("otto"));

    let logins = query(&app, &admin, json!({ "filter": { "action": "login" } })).await;
    assert_eq!(logins.entries.len(), 3);
    let none = query(&app, &admin, json!({ "filter": { "action": "user.add" } })).await;
    assert!(none.entries.is_empty());

    let later = (start + 1800).to_string();
    let recent = query(&app, &admin, json!({ "filter": { "from": later } })).await;
    assert_eq!(
        recent.entries.len(),
        2,
        "from excludes vera's sign-in an hour earlier"
    );
    let earlier = query(&app, &admin, json!({ "filter": { "to": later } })).await;
    assert_eq!(earlier.entries.len(), 1);
    assert_eq!(earlier.entries[0].actor.as_deref(), Some("vera"));

    let first = query(&app, &admin, json!({ "page_size": 2 })).await;
    assert_eq!(first.entries.len(), 2);
    assert!(first.has_more);
    let second = query(&app, &admin, json!({ "page_size": 2, "page": 1 })).await;
    assert_eq!(second.entries.len(), 1);
    assert!(!second.has_more);
    assert_eq!(second.entries[0].actor.as_deref(), Some("vera"));

    let bad = app
        .post_json(
            &admin,
            QueryAudit::PATH,
            &json!({ "query": { "filter": { "outcome": "maybe" } } }),
        )
        .await;
    assert_ne!(bad.status(), 200, "an unknown outcome is refused");
    assert!(bad.text().await.unwrap().contains("Outcome"));

    let exported = export(&app, &admin, "?actor=otto").await;
    assert_eq!(exported.len(), 1, "the export honours the filters");
    assert_eq!(cell(&exported[0], "user"), "otto");
}

#[tokio::test]
async fn a_range_up_to_a_day_or_a_minute_includes_all_of_it() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let client = ClientInfo {
        addr: "192.0.2.1".parse().unwrap(),
        user_agent: String::new(),
    };
    // 2025-11-25 13:04:05 UTC, 23:59:59 (the day's last second), and the next midnight.
    for (at, actor) in [
        (1_764_075_845, "at-13-04-05"),
        (1_764_115_199, "at-23-59-59"),
        (1_764_115_200, "next-day"),
    ] {
        let event = AuditEvent {
            actor: Some(actor),
            role: None,
            client: &client,
            action: "probe",
            target: None,
            outcome: Outcome::Success,
            detail: None,
            preview: None,
            journal_id: None,
            arguments: None,
        };
        audit.record(at, event).await.unwrap();
    }
    let actors = |page: AuditPage| -> Vec<String> {
        page.entries
            .into_iter()
            .map(|entry| entry.actor.unwrap())
            .collect()
    };

    let day = json!({ "filter": { "action": "probe", "from": "2025-11-25", "to": "2025-11-25" } });
    assert_eq!(
        actors(query(&app, &admin, day).await),
        ["at-23-59-59", "at-13-04-05"],
        "the whole day, not only its midnight"
    );
    let minute = json!({ "filter": { "action": "probe", "from": "2025-11-25T13:04", "to": "2025-11-25T13:04" } });
    assert_eq!(
        actors(query(&app, &admin, minute).await),
        ["at-13-04-05"],
        "the whole minute"
    );
    let late_minute = json!({ "filter": { "action": "probe", "to": "2025-11-25 23:59" } });
    assert_eq!(actors(query(&app, &admin, late_minute).await).len(), 2);

    let exported = export(&app, &admin, "?action=probe&to=2025-11-25").await;
    let users: Vec<_> = exported.iter().map(|row| cell(row, "user")).collect();
    assert_eq!(
        users,
        ["at-23-59-59", "at-13-04-05"],
        "the export reads the range alike"
    );
}

#[tokio::test]
async fn the_csv_holds_the_login_records_with_actor_and_outcome() {
    let app = spawn_app().await;
    app.sign_in(&app.browser(), "vera", "wrong-password").await;
    let vera = app.browser();
    app.sign_in(&vera, "vera", &password_of("vera")).await;
    let admin = app.signed_in(Role::Admin).await;

    let rows = export(&app, &admin, "").await;
    let logins: Vec<_> = rows
        .iter()
        .filter(|row| cell(row, "action") == "login")
        .map(|row| (cell(row, "user"), cell(row, "outcome")))
        .collect();
    assert_eq!(
        logins,
        [("ada", "success"), ("vera", "success"), ("vera", "refused")]
    );
    for row in &rows {
        assert_eq!(cell(row, "client_addr"), "127.0.0.1");
        assert!(cell(row, "time_utc").len() == 19, "a UTC time");
    }

    // The export itself is audited.
    let page = query(
        &app,
        &admin,
        json!({ "filter": { "action": "audit.export" } }),
    )
    .await;
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].actor.as_deref(), Some("ada"));
}

#[tokio::test]
async fn a_formula_in_a_record_is_neutralised_in_the_export() {
    let app = spawn_app().await;
    app.sign_in(&app.browser(), "=cmd()", "whatever-password")
        .await;
    let admin = app.signed_in(Role::Admin).await;

    let rows = export(&app, &admin, "?outcome=refused").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(cell(&rows[0], "user"), "'=cmd()");
    let page = query(&app, &admin, json!({ "filter": { "outcome": "refused" } })).await;
    assert_eq!(
        page.entries[0].actor.as_deref(),
        Some("=cmd()"),
        "the page shows the record as it is"
    );
}

#[tokio::test]
async fn admins_see_the_helpers_journal_check_and_others_are_refused() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    // Without a helper the check is refused in plain words, not with internal text.
    let response = app.post_json(&admin, JournalStatus::PATH, &json!({})).await;
    assert_ne!(response.status(), 200);
    assert!(
        response.text().await.unwrap().contains("not reachable"),
        "says why"
    );

    let helper = support::FakeHelper::start(&app.helper_socket, 100);
    let status = journal_status(&app, &admin).await;
    let check = &status.check;
    assert_eq!(
        (check.records, check.broken.as_deref(), check.writable),
        (12, None, true)
    );
    assert_eq!(
        status.panel_last_seq, None,
        "nothing changed through the panel yet"
    );
    assert!(!status.truncated());

    // The stand-in acknowledges this block as journal record 42 but reports 12 records: a
    // journal cut short (or replaced) below a record the audit log names.
    let operator = app.signed_in(Role::Operator).await;
    let block = json!({ "kind": "block", "target": "from 203.0.113.66", "duration_secs": 600, "reason": "flood" });
    let response = app
        .preview_operation(&operator, PreviewOperation::PATH, &block)
        .await;
    assert_eq!(response.status(), 200);
    let preview: ctguard_app::confirm::Preview = response.json().await.unwrap();
    let response = app
        .apply_operation(&operator, ApplyOperation::PATH, &preview.token, &block)
        .await;
    assert_eq!(response.status(), 200);
    let status = journal_status(&app, &admin).await;
    assert_eq!(status.panel_last_seq, Some(42));
    assert!(status.truncated(), "12 records cannot include record 42");
    assert_eq!(
        helper
            .journal_checked
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![42],
        "the check names the record the block's answer named, with its hash"
    );
    assert!(status.rewritten().is_none(), "record 42 is as it was");

    let response = app
        .post_json(&operator, JournalStatus::PATH, &json!({}))
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_journal_cut_short_and_grown_back_is_reported_by_the_records_it_lost() {
    let app = spawn_app().await;
    let helper = support::FakeHelper::start(&app.helper_socket, 100);
    let admin = app.signed_in(Role::Admin).await;
    let operator = app.signed_in(Role::Operator).await;
    let block = json!({ "kind": "block", "target": "from 203.0.113.67", "duration_secs": 600, "reason": "flood" });
    let preview: ctguard_app::confirm::Preview = app
        .preview_operation(&operator, PreviewOperation::PATH, &block)
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .apply_operation(&operator, ApplyOperation::PATH, &preview.token, &block)
        .await;
    assert_eq!(response.status(), 200);
    let told = helper.journal.lock().unwrap()[&42].clone();
    let pool = db::open(&app.database).await.unwrap();
    let stored: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT journal_id, journal_hash FROM audit WHERE action = 'block' AND outcome = 'success'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (stored.0.as_deref(), stored.1.as_deref()),
        (Some("42"), Some(told.as_str())),
        "the audit record keeps the sequence number and the hash the helper answered"
    );
    assert!(journal_status(&app, &admin).await.rewritten().is_none());

    // As many records as before, so a count could not tell; the pair can.
    helper.rewrite_journal();
    let status = journal_status(&app, &admin).await;
    let mismatch = status.rewritten().expect("the rewrite is reported");
    assert_eq!(
        (mismatch.expected.seq, &mismatch.expected.hash),
        (42, &told)
    );
    assert!(mismatch.found.as_ref().is_some_and(|found| *found != told));
}

async fn journal_status(app: &support::TestApp, admin: &reqwest::Client) -> JournalReport {
    let response = app.post_json(admin, JournalStatus::PATH, &json!({})).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}
