//! Operations on the table as the server enforces them: only operators, only after a confirmed
//! preview, never with another change's token, always audited; and no viewer, nor a crowd of them,
//! can starve the helper of the dashboard's readings or an operator's change (issue 13, item 6).
//! The helper is a stand-in here (as slow and as bounded as needed); the end-to-end suite blocks
//! for real.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};

use ctguard_app::{
    auth::Role,
    dashboard::live::LiveSample,
    operators::operations::{ApplyOperation, EntriesOf, PreviewOperation},
};
use ctguard_server::{audit::AuditStore, db};
use futures::future::join_all;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use support::{FakeHelper, LiveEvents, TestApp, spawn_app};

fn block(target: &str) -> Value {
    json!({ "kind": "block", "target": target, "duration_secs": 600, "reason": "flood" })
}

async fn preview(
    app: &support::TestApp,
    client: &reqwest::Client,
    operation: Value,
) -> reqwest::Response {
    app.preview_operation(client, PreviewOperation::PATH, &operation)
        .await
}

async fn apply(
    app: &support::TestApp,
    client: &reqwest::Client,
    token: &str,
    operation: Value,
) -> reqwest::Response {
    app.apply_operation(client, ApplyOperation::PATH, token, &operation)
        .await
}

#[tokio::test]
async fn a_block_happens_only_after_its_own_confirmed_preview_and_is_audited() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let operator = app.signed_in(Role::Operator).await;

    let response = preview(&app, &operator, block("from 203.0.113.66")).await;
    assert_eq!(response.status(), 200);
    let shown: ctguard_app::confirm::Preview = response.json().await.unwrap();
    assert_eq!(shown.title, "Block from 203.0.113.66");
    assert!(
        shown
            .changes
            .iter()
            .any(|c| c.contains("delete its existing entries"))
    );
    assert_eq!(
        helper.block_requests.load(Ordering::SeqCst),
        0,
        "a preview changes nothing"
    );

    // Another target with this token: refused, and the token is spent.
    let tampered = apply(&app, &operator, &shown.token, block("from 203.0.113.77")).await;
    assert_eq!(tampered.status(), 400, "a refusal, not a server fault");
    assert!(tampered.text().await.unwrap().contains("different change"));
    let replay = apply(&app, &operator, &shown.token, block("from 203.0.113.66")).await;
    assert_ne!(replay.status(), 200);
    assert_eq!(helper.block_requests.load(Ordering::SeqCst), 0);

    let response = preview(&app, &operator, block("from 203.0.113.66")).await;
    let shown: ctguard_app::confirm::Preview = response.json().await.unwrap();
    let done = apply(&app, &operator, &shown.token, block("from 203.0.113.66")).await;
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .unwrap()
            .contains("Blocked from 203.0.113.66")
    );
    assert_eq!(helper.block_requests.load(Ordering::SeqCst), 1);

    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let records = audit.recent(20).await.unwrap();
    let blocks: Vec<_> = records.iter().filter(|r| r.action == "block").collect();
    assert!(blocks.iter().any(|r| {
        r.outcome == "success"
            && r.actor.as_deref() == Some("otto")
            && r.preview
                .as_deref()
                .is_some_and(|p| p.contains("Block from 203.0.113.66"))
    }));
    assert_eq!(
        blocks.iter().filter(|r| r.outcome == "refused").count(),
        2,
        "the tampered and the replayed attempts"
    );
}

#[tokio::test]
async fn a_viewer_can_neither_preview_nor_apply_and_bad_targets_are_refused_in_words() {
    let app = spawn_app().await;
    let _helper = FakeHelper::start(&app.helper_socket, 100);
    let viewer = app.signed_in(Role::Viewer).await;
    assert_eq!(
        preview(&app, &viewer, block("from 203.0.113.66"))
            .await
            .status(),
        403
    );
    assert_eq!(
        apply(&app, &viewer, "00", block("from 203.0.113.66"))
            .await
            .status(),
        403
    );
    // Both refusals are in the audit log, with the viewer and what was asked.
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let refused: Vec<_> = audit
        .recent(20)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "forbidden")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|r| r.outcome == "refused"
        && r.actor.as_deref() == Some(support::account_of(Role::Viewer))
        && r.role.as_deref() == Some("viewer")));
    assert!(
        refused
            .iter()
            .any(|r| r.target.as_deref() == Some(PreviewOperation::PATH))
    );

    let operator = app.signed_in(Role::Operator).await;
    let response = preview(&app, &operator, block("from 203.0.113.66/33")).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("not an address or a CIDR network"), "{text}");
}

/// A drill-down as the Suspicious page asks for it; the status of the answer.
async fn drill_down(app: &TestApp, client: &reqwest::Client, network: &str) -> u16 {
    app.post_form(client, EntriesOf::PATH, &[("network", network)])
        .await
        .status()
        .as_u16()
}

/// Reads the live feed until `done` is set, failing on any sample that is not a new reading of the
/// helper; returns how many it saw.
async fn dashboard_stays_up(events: &mut LiveEvents, done: &AtomicBool) -> usize {
    let mut newest = 0;
    let mut seen = 0;
    while !done.load(Ordering::SeqCst) {
        match events.next().await {
            LiveSample::Up { at_ms, .. } => {
                assert!(at_ms >= newest, "samples in order");
                newest = at_ms;
                seen += 1;
            }
            other => panic!("the dashboard lost the helper: {other:?}"),
        }
    }
    seen
}

/// A walk of the table takes this long in the stand-in helper: long enough for drill-downs to
/// pile up on it.
const WALK_MS: u64 = 300;

#[tokio::test]
async fn forty_drill_downs_by_one_viewer_stall_neither_the_dashboard_nor_an_operators_block() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    helper.walk_delay_ms.store(WALK_MS, Ordering::SeqCst);
    let viewer = app.signed_in(Role::Viewer).await;
    let operator = app.signed_in(Role::Operator).await;
    let mut dashboard = LiveEvents::connect(&app, &app.signed_in(Role::Viewer).await).await;
    dashboard
        .until("up", |s| matches!(s, LiveSample::Up { .. }))
        .await;

    let done = AtomicBool::new(false);
    let flood = join_all((0..40).map(|i| {
        let (app, viewer) = (&app, &viewer);
        async move { drill_down(app, viewer, &format!("198.51.100.{i}/32")).await }
    }));
    let block = async {
        let operation = block("from 203.0.113.66");
        let response = preview(&app, &operator, operation.clone()).await;
        assert_eq!(response.status(), 200, "the operator's preview");
        let shown: ctguard_app::confirm::Preview = response.json().await.unwrap();
        apply(&app, &operator, &shown.token, operation)
            .await
            .status()
    };
    let work = async {
        let outcome = tokio::join!(flood, block);
        done.store(true, Ordering::SeqCst);
        outcome
    };
    let ((drill_downs, blocked), updates) =
        tokio::join!(work, dashboard_stays_up(&mut dashboard, &done));

    assert_eq!(blocked, 200, "the block went through");
    assert_eq!(helper.block_requests.load(Ordering::SeqCst), 1);
    assert!(
        updates >= 3,
        "the dashboard kept updating: {updates} samples"
    );
    assert!(
        drill_downs.iter().all(|&s| s == 200 || s == 429),
        "answered or refused for now, never failed: {drill_downs:?}"
    );
    let refused = drill_downs.iter().filter(|&&s| s == 429).count();
    assert!(
        refused >= 20,
        "one login's burst is bounded: {refused} of 40 refused"
    );
    assert!(drill_downs.contains(&200), "its share is answered");
}

#[tokio::test]
async fn a_crowd_of_viewers_drilling_down_at_once_is_answered_in_turn_and_the_dashboard_stays_up() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    helper.walk_delay_ms.store(WALK_MS, Ordering::SeqCst);
    // More drill-downs at once than the helper has connections, each login within its share.
    let mut crowd = Vec::new();
    for _ in 0..10 {
        crowd.push(app.signed_in(Role::Viewer).await);
    }
    let mut dashboard = LiveEvents::connect(&app, &app.signed_in(Role::Viewer).await).await;
    dashboard
        .until("up", |s| matches!(s, LiveSample::Up { .. }))
        .await;

    let done = AtomicBool::new(false);
    let app = &app;
    let drill_downs = join_all(crowd.iter().flat_map(|viewer| {
        (0..4).map(
            move |i| async move { drill_down(app, viewer, &format!("198.51.100.{i}/32")).await },
        )
    }));
    let work = async {
        let statuses = drill_downs.await;
        done.store(true, Ordering::SeqCst);
        statuses
    };
    let (statuses, updates) = tokio::join!(work, dashboard_stays_up(&mut dashboard, &done));
    assert_eq!(statuses.len(), 10 * 4);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(
        updates >= 3,
        "the dashboard kept updating: {updates} samples"
    );
}

async fn confirmed(app: &TestApp, client: &reqwest::Client, operation: Value) -> reqwest::Response {
    let shown: ctguard_app::confirm::Preview = preview(app, client, operation.clone())
        .await
        .json()
        .await
        .unwrap();
    apply(app, client, &shown.token, operation).await
}

#[tokio::test]
async fn a_change_whose_audit_record_cannot_be_written_is_not_asked_of_the_helper() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let operator = app.signed_in(Role::Operator).await;
    let shown: ctguard_app::confirm::Preview = preview(&app, &operator, block("from 203.0.113.70"))
        .await
        .json()
        .await
        .unwrap();
    support::break_the_audit_log(&app).await;
    let response = apply(&app, &operator, &shown.token, block("from 203.0.113.70")).await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("Nothing was changed"), "{text}");
    assert!(!text.contains("disk is full"), "no internal text: {text}");
    assert_eq!(
        helper.block_requests.load(Ordering::SeqCst),
        0,
        "the helper was never asked"
    );
}

#[tokio::test]
async fn a_change_is_on_record_as_pending_while_the_helper_carries_it_out() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    helper.change_delay_ms.store(1_500, Ordering::SeqCst);
    let operator = app.signed_in(Role::Operator).await;
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let change = {
        let app = &app;
        let operator = &operator;
        async move { confirmed(app, operator, block("from 203.0.113.71")).await }
    };
    let watch = async {
        // The stand-in holds the request 1.5 s before it answers: the record is there meanwhile.
        support::eventually("the block's pending audit record", || async {
            audit.recent(10).await.unwrap().iter().any(|r| {
                r.action == "block"
                    && r.outcome == "pending"
                    && r.target.as_deref() == Some("from 203.0.113.71")
            })
        })
        .await;
    };
    let (response, ()) = tokio::join!(change, watch);
    assert_eq!(response.status(), 200);
    assert_eq!(helper.block_requests.load(Ordering::SeqCst), 1);
    let records = audit.recent(10).await.unwrap();
    let blocks: Vec<_> = records.iter().filter(|r| r.action == "block").collect();
    assert_eq!(
        blocks.len(),
        1,
        "one record, completed in place: {blocks:?}"
    );
    assert_eq!(blocks[0].outcome, "success");
    assert_eq!(blocks[0].journal_id.as_deref(), Some("42"));
}

#[tokio::test]
async fn a_change_the_helper_did_not_answer_is_recorded_as_outcome_unknown_never_refused() {
    let app = support::spawn_app_with(|settings| {
        settings.helper.slow_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let operator = app.signed_in(Role::Operator).await;
    let shown: ctguard_app::confirm::Preview = preview(&app, &operator, block("from 203.0.113.72"))
        .await
        .json()
        .await
        .unwrap();
    // Longer than the server waits for the helper (2 s): the block may yet be made.
    helper.change_delay_ms.store(3_000, Ordering::SeqCst);
    let response = apply(&app, &operator, &shown.token, block("from 203.0.113.72")).await;
    assert_eq!(response.status(), 504);
    let text = response.text().await.unwrap();
    assert!(text.contains("may or may not have been made"), "{text}");
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let records = audit.recent(10).await.unwrap();
    let block = records
        .iter()
        .find(|r| r.action == "block")
        .expect("audited");
    assert_eq!(block.outcome, "unknown", "{block:?}");
    support::eventually("the stand-in to carry the block out after all", || async {
        helper.block_requests.load(Ordering::SeqCst) == 1
    })
    .await;
}
