//! The audit log for admins: the Audit page, its server function and the CSV export, through real
//! HTTP against a real SQLite database — who may read it, what the filters select, and that the
//! export is a spreadsheet-safe CSV of the records.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    admin::audit::{AuditPage, JournalReport, JournalStatus, QueryAudit},
    auth::Role,
    operators::operations::{ApplyOperation, PreviewOperation},
};
use ctguard_server::{
    audit::{AuditEvent, AuditStore, Outcome},
    client_info::ClientInfo,
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

// Flooding (issue 13, item 5): cheap repeated refusals are folded per key and minute, exactly
// counted; everything else keeps a record of its own; old records are archived, then deleted.

/// The refused sign-in records, newest first, as (detail, count).
async fn refused_logins(app: &TestApp, admin: &reqwest::Client) -> Vec<(String, i64)> {
    let page = query(
        app,
        admin,
        json!({ "filter": { "action": "login", "outcome": "refused" }, "page_size": 200 }),
    )
    .await;
    page.entries
        .into_iter()
        .map(|entry| (entry.detail.unwrap_or_default(), entry.count))
        .collect()
}

#[tokio::test]
async fn two_hundred_parallel_throttled_sign_ins_are_one_record_counting_exactly_200() {
    let app = spawn_app().await;
    // Signed in before the attack: its session (and device) is not the attacker's concern.
    let admin = app.signed_in(Role::Admin).await;
    let attacker = app.browser();
    // Five wrong passwords lock the account for this address; each was checked and has its
    // own record.
    for _ in 0..5 {
        app.sign_in(&attacker, "vera", "wrong-password").await;
    }
    let guesses = (0..200).map(|_| {
        let attacker = attacker.clone();
        let app = &app;
        async move {
            let response = app.sign_in(&attacker, "vera", "another-guess").await;
            assert!(
                support::location(&response).contains("error=throttled"),
                "refused as throttled: {}",
                support::location(&response)
            );
        }
    });
    futures::future::join_all(guesses).await;

    let refused = refused_logins(&app, &admin).await;
    let throttled: Vec<_> = refused
        .iter()
        .filter(|(detail, _)| detail.starts_with("throttled"))
        .collect();
    assert_eq!(throttled.len(), 1, "one record for the minute: {refused:?}");
    assert_eq!(throttled[0].1, 200, "every attempt counted, none lost");
    let checked: Vec<_> = refused
        .iter()
        .filter(|(detail, _)| detail.starts_with("wrong"))
        .collect();
    assert_eq!(checked.len(), 5, "each checked password is its own record");
    assert!(checked.iter().all(|(_, count)| *count == 1));

    // The page and the CSV show the count.
    let html = body(app.get(&admin, "/audit?action=login&outcome=refused").await).await;
    assert!(html.contains("×200"), "the page shows the count: {html}");
    assert!(html.contains(r#"data-count="200""#));
    let rows = export(&app, &admin, "?action=login&outcome=refused").await;
    let folded: Vec<_> = rows
        .iter()
        .filter(|row| cell(row, "detail").starts_with("throttled"))
        .collect();
    assert_eq!(folded.len(), 1);
    assert_eq!(cell(folded[0], "count"), "200");
    assert_eq!(
        cell(folded[0], "last_time_utc").len(),
        19,
        "and its last time"
    );

    // The next minute starts a record of its own: an attack's course stays visible.
    app.clock.advance(60);
    app.sign_in(&attacker, "vera", "a-later-guess").await;
    let refused = refused_logins(&app, &admin).await;
    assert_eq!(
        refused[0],
        ("throttled: too many failed attempts".to_owned(), 1),
        "newest first: {refused:?}"
    );
}

#[tokio::test]
async fn a_single_refusal_is_on_record_at_once_and_repeats_fold_into_it() {
    async fn forbidden(app: &TestApp, user: &reqwest::Client) -> reqwest::StatusCode {
        let change = json!({ "token": "x", "change": { "kind": "set_role", "username": "otto", "role": "admin" } });
        let path = ctguard_app::admin::users::ApplyUserChange::PATH;
        app.post_json(user, path, &change).await.status()
    }
    async fn records(
        app: &TestApp,
        admin: &reqwest::Client,
    ) -> Vec<ctguard_app::admin::audit::AuditEntry> {
        query(app, admin, json!({ "filter": { "action": "forbidden" } }))
            .await
            .entries
    }
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let viewer = app.signed_in(Role::Viewer).await;
    assert_eq!(forbidden(&app, &viewer).await, 403);
    let first = records(&app, &admin).await;
    assert_eq!(
        first.len(),
        1,
        "written at once, not at the end of the minute"
    );
    assert_eq!(
        (first[0].actor.as_deref(), first[0].count),
        (Some("vera"), 1)
    );
    assert!(first[0].times().is_none(), "a single event shows no count");

    for _ in 0..3 {
        assert_eq!(forbidden(&app, &viewer).await, 403);
    }
    let after = records(&app, &admin).await;
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].id, after[0].count), (first[0].id, 4), "folded");
    assert_eq!(after[0].times().as_deref(), Some("×4"));

    // Another user's refusal is another key.
    let operator = app.signed_in(Role::Operator).await;
    assert_eq!(forbidden(&app, &operator).await, 403);
    assert_eq!(records(&app, &admin).await.len(), 2);
}

#[tokio::test]
async fn changes_and_sign_ins_are_never_folded() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    for role in ["operator", "viewer", "operator", "viewer"] {
        let response = app
            .change_user(
                &admin,
                json!({ "kind": "set_role", "username": "vera", "role": role }),
            )
            .await;
        assert_eq!(response.status(), 200, "set vera's role to {role}");
    }
    for _ in 0..3 {
        app.signed_in(Role::Operator).await;
    }
    let page = query(&app, &admin, json!({ "page_size": 200 })).await;
    let changes: Vec<_> = page
        .entries
        .iter()
        .filter(|entry| entry.action.starts_with("user."))
        .collect();
    assert_eq!(changes.len(), 4, "every change its own record: {changes:?}");
    let otto: Vec<_> = page
        .entries
        .iter()
        .filter(|entry| entry.action == "login" && entry.actor.as_deref() == Some("otto"))
        .collect();
    assert_eq!(otto.len(), 3, "every sign-in its own record");
    assert!(
        page.entries.iter().all(|entry| entry.count == 1),
        "nothing folded: {:?}",
        page.entries
    );
}

#[tokio::test]
async fn ever_new_names_or_sources_cannot_grow_a_minute_past_its_bound() {
    let app = spawn_app().await;
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let at = app.clock.now();
    let events = 3 * ctguard_server::audit::aggregate::MAX_KEYS_PER_PERIOD;
    for i in 0..events {
        let client = ClientInfo {
            addr: format!("2001:db8:{i:x}::1").parse().unwrap(),
            user_agent: String::new(),
        };
        let name = format!("name-{i}");
        let event = AuditEvent {
            actor: Some(&name),
            role: None,
            client: &client,
            action: "login",
            target: None,
            outcome: Outcome::Refused,
            detail: Some("throttled: too many failed attempts"),
            preview: None,
            journal_id: None,
            arguments: None,
        };
        audit.record_aggregated(at, event).await.unwrap();
    }
    let pool = db::open(&app.database).await.unwrap();
    let (records, total): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), SUM(count) FROM audit WHERE action = 'login' AND outcome = 'refused'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(total, events, "every event counted");
    assert_eq!(
        records,
        ctguard_server::audit::aggregate::MAX_KEYS_PER_PERIOD + 1,
        "the bound, plus the one record the rest fold into"
    );
    let many: (String, i64) = sqlx::query_as(
        "SELECT client_addr, count FROM audit WHERE action = 'login' AND actor IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        many,
        (
            ctguard_server::audit::aggregate::MANY_SOURCES.to_owned(),
            events - ctguard_server::audit::aggregate::MAX_KEYS_PER_PERIOD
        )
    );
}

#[tokio::test]
async fn pages_link_by_cursor_older_and_newer() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let client = ClientInfo {
        addr: "192.0.2.1".parse().unwrap(),
        user_agent: String::new(),
    };
    // Seven records, two of them in the same second (the cursor's id settles those).
    for (i, at) in [100, 200, 300, 300, 400, 500, 600].into_iter().enumerate() {
        let actor = format!("p{i}");
        let event = probe(&actor, &client);
        audit.record(1_700_000_000 + at, event).await.unwrap();
    }
    let actors = |page: &AuditPage| -> Vec<String> {
        page.entries
            .iter()
            .map(|entry| entry.actor.clone().unwrap())
            .collect()
    };
    let filter = json!({ "action": "probe" });
    let first = query(&app, &admin, json!({ "filter": filter, "page_size": 3 })).await;
    assert_eq!(actors(&first), ["p6", "p5", "p4"]);
    assert!(first.has_more && !first.has_newer);
    let last = first.entries.last().unwrap();
    let second = query(&app, &admin, json!({ "filter": filter, "page_size": 3, "page": 1, "before": { "at": last.at, "id": last.id } })).await;
    assert_eq!(actors(&second), ["p3", "p2", "p1"], "same second, by id");
    assert!(second.has_more && second.has_newer);
    let last = second.entries.last().unwrap();
    let third = query(&app, &admin, json!({ "filter": filter, "page_size": 3, "page": 2, "before": { "at": last.at, "id": last.id } })).await;
    assert_eq!(actors(&third), ["p0"]);
    assert!(!third.has_more);
    let top = third.entries.first().unwrap();
    let back = query(&app, &admin, json!({ "filter": filter, "page_size": 3, "page": 1, "after": { "at": top.at, "id": top.id } })).await;
    assert_eq!(
        actors(&back),
        ["p3", "p2", "p1"],
        "newer, still newest first"
    );
    assert!(back.has_newer && back.has_more);

    // The page's links carry the cursor: past its first 50 records, the Older link names the
    // last one shown.
    for i in 0..50 {
        let actor = format!("filler{i}");
        audit
            .record(1_700_000_010, probe(&actor, &client))
            .await
            .unwrap();
    }
    let shown = query(&app, &admin, json!({ "filter": filter })).await;
    let last = shown.entries.last().unwrap();
    let html = body(app.get(&admin, "/audit?action=probe").await).await;
    let link = format!("page=1&amp;before={}.{}", last.at, last.id);
    assert!(html.contains(&link), "the Older link has {link}: {html}");
}

fn probe<'a>(actor: &'a str, client: &'a ClientInfo) -> AuditEvent<'a> {
    AuditEvent {
        actor: Some(actor),
        role: None,
        client,
        action: "probe",
        target: None,
        outcome: Outcome::Success,
        detail: None,
        preview: None,
        journal_id: None,
        arguments: None,
    }
}

/// Writes `count` records `days` old straight into the database at `dir`, as a store that has
/// run for that long would hold them; their ids.
async fn old_records(dir: &std::path::Path, days: i64, count: usize) -> Vec<i64> {
    let pool = db::open(&dir.join("ctguard.db")).await.unwrap();
    let audit = AuditStore::new(pool.clone());
    let client = ClientInfo {
        addr: "192.0.2.9".parse().unwrap(),
        user_agent: "old".into(),
    };
    let at = ctguard_server::clock::SystemClock.now() - days * 86_400;
    for i in 0..count {
        let actor = format!("old-{days}-{i}");
        audit.record(at, probe(&actor, &client)).await.unwrap();
    }
    let ids = sqlx::query_scalar("SELECT id FROM audit WHERE at = ? ORDER BY id")
        .bind(at)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    ids
}

/// The ids in the archive files (a row per archived copy), and each file's name.
fn archived_ids(state: &std::path::Path) -> (Vec<i64>, Vec<String>) {
    let dir = state.join(ctguard_server::audit::retention::ARCHIVE_DIR);
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .unwrap();
        for row in reader.records() {
            if let Some(id) = row.ok().and_then(|row| row.get(0)?.parse().ok()) {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    (ids, names)
}

async fn sweep_record(
    app: &TestApp,
    admin: &reqwest::Client,
) -> Vec<ctguard_app::admin::audit::AuditEntry> {
    query(
        app,
        admin,
        json!({ "filter": { "action": "audit.retention" } }),
    )
    .await
    .entries
}

/// How many of the records `ids` names are still in the store, by id and by actor (ids alone
/// could be handed out again).
async fn remaining(app: &TestApp, ids: &[i64]) -> usize {
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let mut left = 0;
    for id in ids {
        let record = audit.get(*id).await.unwrap();
        left += usize::from(record.is_some_and(|r| r.actor.is_some_and(|a| a.starts_with("old-"))));
    }
    left
}

#[tokio::test]
async fn retention_archives_then_deletes_and_audits_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let expired = old_records(dir.path(), 401, 3).await;
    let kept = old_records(dir.path(), 399, 2).await;
    let app = support::spawn_app_in(dir, |settings| settings.audit_retention_days = 400).await;
    let admin = app.signed_in(Role::Admin).await;
    support::eventually("the start's sweep", || async {
        !sweep_record(&app, &admin).await.is_empty()
    })
    .await;
    let sweep = sweep_record(&app, &admin).await;
    assert_eq!(sweep.len(), 1, "one sweep, one record");
    assert_eq!(sweep[0].outcome, "success");
    let detail = sweep[0].detail.clone().unwrap();
    assert!(detail.starts_with("3 records from before"), "{detail}");
    let (ids, names) = archived_ids(&app.dir.path().join("state"));
    assert_eq!(ids, expired, "the expired records, each archived");
    assert_eq!(names.len(), 1);
    assert!(
        detail.contains(&names[0]) && sweep[0].target.as_deref().unwrap().contains(&names[0]),
        "the record names the file: {detail}"
    );
    assert_eq!(remaining(&app, &expired).await, 0, "deleted once archived");
    assert_eq!(remaining(&app, &kept).await, 2, "younger records stay");

    // What was archived is the record as it was.
    let text = std::fs::read_to_string(
        app.dir
            .path()
            .join("state")
            .join(ctguard_server::audit::retention::ARCHIVE_DIR)
            .join(&names[0]),
    )
    .unwrap();
    assert!(text.starts_with("id,time_utc,at,last_at,count,user,"));
    assert!(text.contains("old-401-0") && text.contains("192.0.2.9"));
}

#[tokio::test]
async fn a_crash_between_archiving_and_deleting_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let expired = old_records(dir.path(), 500, 4).await;
    // The sweep of a server that died after the archive was on disk, before the delete: and
    // mid-way through writing its next row.
    let state = dir.path().join("state");
    let retention = ctguard_server::audit::retention::Retention::in_state_dir(
        AuditStore::new(db::open(&dir.path().join("ctguard.db")).await.unwrap()),
        &state,
        400,
    );
    let now = ctguard_server::clock::SystemClock.now();
    let archived = retention.archive_expired(now).await.unwrap().unwrap();
    assert_eq!(archived.ids, expired);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&archived.file)
            .unwrap();
        file.write_all(b"99999,2025-01-0").unwrap();
    }
    drop(retention);

    let app = support::spawn_app_in(dir, |settings| settings.audit_retention_days = 400).await;
    let admin = app.signed_in(Role::Admin).await;
    support::eventually("the restarted server's sweep", || async {
        !sweep_record(&app, &admin).await.is_empty()
    })
    .await;
    let (ids, _) = archived_ids(&state_of(&app));
    let twice: Vec<i64> = expired.iter().flat_map(|id| [*id, *id]).collect();
    assert_eq!(
        ids.into_iter()
            .filter(|id| *id != 99_999)
            .collect::<Vec<_>>(),
        twice,
        "archived twice, never lost"
    );
    let sweep = sweep_record(&app, &admin).await;
    assert!(
        sweep[0].detail.as_deref().unwrap().starts_with("4 records"),
        "{sweep:?}"
    );
    assert_eq!(remaining(&app, &expired).await, 0);
}

fn state_of(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("state")
}
