//! Operations on the table as the server enforces them: only operators, only after a confirmed
//! preview, never with another change's token, always audited. The helper is a stand-in here; the
//! end-to-end suite blocks for real.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use ctguard_app::{
    auth::Role,
    operations::{ApplyOperation, PreviewOperation},
};
use ctguard_server::{audit::AuditStore, db};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use support::{FakeHelper, spawn_app};

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
