//! Traces of new flows (issue 15) as the server enforces them: starting and stopping one are
//! confirmed changes like a block (operators and admins, a preview, a single-use token, the audit
//! record written first and completed with the outcome and the helper's journal record); the
//! reading is for viewers too. The helper is the stand-in, which traces statefully.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::sync::atomic::Ordering;

use ctguard_app::{
    auth::Role,
    confirm::Preview,
    operators::operations::{ApplyOperation, PreviewOperation, ReadTrace},
    operators::trace::TraceView,
};
use ctguard_server::{audit::AuditStore, db};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use support::{FLOODER, FakeHelper, TestApp, body, spawn_app};

fn start(filter: &str) -> Value {
    json!({ "kind": "start_trace", "filter": filter, "seconds": 300, "reason": "who floods" })
}

fn stop() -> Value {
    json!({ "kind": "stop_trace" })
}

async fn preview(app: &TestApp, client: &reqwest::Client, operation: &Value) -> reqwest::Response {
    app.preview_operation(client, PreviewOperation::PATH, operation)
        .await
}

async fn apply(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    operation: &Value,
) -> reqwest::Response {
    app.apply_operation(client, ApplyOperation::PATH, token, operation)
        .await
}

async fn confirmed(
    app: &TestApp,
    client: &reqwest::Client,
    operation: &Value,
) -> reqwest::Response {
    let response = preview(app, client, operation).await;
    assert_eq!(response.status(), 200);
    let shown: Preview = response.json().await.unwrap();
    apply(app, client, &shown.token, operation).await
}

async fn reading(app: &TestApp, client: &reqwest::Client) -> TraceView {
    let response = app.post_form(client, ReadTrace::PATH, &[]).await;
    assert_eq!(response.status(), 200);
    serde_json::from_str(&body(response).await).unwrap()
}

async fn records(app: &TestApp, action: &str) -> Vec<ctguard_server::audit::AuditRecord> {
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    audit
        .recent(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == action)
        .collect()
}

#[tokio::test]
async fn a_viewer_may_not_start_a_trace_and_nothing_reaches_the_helper_nor_the_audit_log() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let viewer = app.signed_in(Role::Viewer).await;
    let response = preview(&app, &viewer, &start("to 198.51.100.10")).await;
    assert_eq!(response.status(), 403);
    let response = apply(&app, &viewer, "made-up", &start("to 198.51.100.10")).await;
    assert_eq!(response.status(), 403);
    let response = apply(&app, &viewer, "made-up", &stop()).await;
    assert_eq!(response.status(), 403);
    assert!(helper.trace_requests.lock().unwrap().is_empty());
    assert!(records(&app, "start_trace").await.is_empty());
    assert!(records(&app, "stop_trace").await.is_empty());
}

#[tokio::test]
async fn an_operators_start_needs_its_confirmation_and_a_filter_that_parses() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let operator = app.signed_in(Role::Operator).await;

    let response = preview(&app, &operator, &start("to 198.51.100.10")).await;
    assert_eq!(response.status(), 200);
    let shown: Preview = response.json().await.unwrap();
    assert_eq!(shown.title, "Trace new flows to 198.51.100.10");
    assert!(
        shown.changes.iter().any(|c| c.contains("for 5 min")),
        "{shown:?}"
    );
    assert!(
        shown
            .changes
            .iter()
            .any(|c| c.contains("nothing is logged to syslog")),
        "{shown:?}"
    );
    assert!(
        helper.trace_requests.lock().unwrap().is_empty(),
        "a preview asks nothing"
    );

    // No token, or another's: refused, and nothing asked of the helper.
    let response = apply(&app, &operator, "made-up", &start("to 198.51.100.10")).await;
    assert_eq!(response.status(), 400);
    let response = apply(&app, &operator, &shown.token, &start("to 198.51.100.11")).await;
    assert_eq!(response.status(), 400);
    assert!(helper.trace_requests.lock().unwrap().is_empty());
    assert_eq!(
        records(&app, "start_trace")
            .await
            .iter()
            .filter(|r| r.outcome == "refused")
            .count(),
        2
    );

    for (filter, words) in [
        ("", "Say what to trace"),
        ("to nowhere", "is not understood"),
    ] {
        let response = preview(&app, &operator, &start(filter)).await;
        assert_eq!(response.status(), 400, "{filter}");
        let text = body(response).await;
        assert!(text.contains(words), "{filter}: {text}");
    }
    let too_long = json!({ "kind": "start_trace", "filter": "to 198.51.100.10", "seconds": 601, "reason": "x" });
    let response = preview(&app, &operator, &too_long).await;
    assert_eq!(response.status(), 400);
    assert!(body(response).await.contains("1 s to 10 minutes"));
}

#[tokio::test]
async fn a_confirmed_start_is_on_record_before_the_helper_is_asked_and_completed_with_its_outcome()
{
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    helper.change_delay_ms.store(1_500, Ordering::SeqCst);
    let operator = app.signed_in(Role::Operator).await;
    let audit = AuditStore::new(db::open(&app.database).await.unwrap());
    let change = {
        let (app, operator) = (&app, &operator);
        async move { confirmed(app, operator, &start("udp to 198.51.100.10 dport 53")).await }
    };
    let watch = async {
        support::eventually("the trace's pending audit record", || async {
            audit.recent(10).await.unwrap().iter().any(|r| {
                r.action == "start_trace"
                    && r.outcome == "pending"
                    && r.target.as_deref() == Some("udp to 198.51.100.10 dport 53")
            })
        })
        .await;
    };
    let (response, ()) = tokio::join!(change, watch);
    assert_eq!(response.status(), 200);
    assert_eq!(*helper.trace_requests.lock().unwrap(), ["start_trace"]);
    let text = body(response).await;
    assert!(text.contains("Tracing new flows"), "{text}");
    let starts = records(&app, "start_trace").await;
    assert_eq!(starts.len(), 1, "completed in place: {starts:?}");
    assert_eq!(starts[0].outcome, "success");
    assert_eq!(starts[0].journal_id.as_deref(), Some("50"));
    assert!(
        starts[0]
            .preview
            .as_deref()
            .is_some_and(|p| p.contains("nothing is logged to syslog"))
    );
}

#[tokio::test]
async fn a_second_start_is_refused_in_words_stop_works_and_a_viewer_reads_the_counts() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 100);
    let operator = app.signed_in(Role::Operator).await;
    let viewer = app.signed_in(Role::Viewer).await;
    assert!(matches!(
        reading(&app, &viewer).await,
        TraceView::Reading {
            reading: None,
            running: false,
            ..
        }
    ));

    let response = confirmed(&app, &operator, &start("to 198.51.100.10")).await;
    assert_eq!(response.status(), 200);

    // A viewer sees the running trace's counts.
    let TraceView::Reading {
        reading: Some(counts),
        running: true,
        ..
    } = reading(&app, &viewer).await
    else {
        panic!("a running trace");
    };
    assert_eq!(counts.sources[0].address, Some(FLOODER));
    assert_eq!(counts.new_flows, 9_120);

    // The page: the running trace's counts, the form and Stop for an operator only.
    let html = body(app.get(&operator, "/suspicious").await).await;
    assert!(html.contains(r#"data-testid="trace-form""#), "{html}");
    assert!(html.contains(r#"data-testid="trace-stop""#), "{html}");
    assert!(html.contains("9,120 new flows"), "{html}");
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(html.contains(r#"data-testid="trace-sources""#), "{html}");
    assert!(!html.contains(r#"data-testid="trace-stop""#));

    // A second start: the preview warns, the helper refuses, in the panel's words.
    let response = preview(&app, &operator, &start("from 203.0.113.0/24")).await;
    assert_eq!(response.status(), 200);
    let shown: Preview = response.json().await.unwrap();
    assert!(
        shown.warnings.iter().any(|w| w.contains("is running")),
        "{shown:?}"
    );
    let response = apply(&app, &operator, &shown.token, &start("from 203.0.113.0/24")).await;
    assert_eq!(response.status(), 400);
    let text = body(response).await;
    assert!(
        text.contains(
            "A trace of to 198.51.100.10 is already running; stop it before starting another."
        ),
        "{text}"
    );
    assert!(
        !text.contains("stop it first"),
        "not the helper's own text: {text}"
    );
    assert!(
        records(&app, "start_trace")
            .await
            .iter()
            .any(|r| r.outcome == "refused")
    );

    // Stop: confirmed, journaled, and the counts stay, ended.
    let response = confirmed(&app, &operator, &stop()).await;
    assert_eq!(response.status(), 200);
    assert!(
        body(response)
            .await
            .contains("Stopped the trace of to 198.51.100.10.")
    );
    let stops = records(&app, "stop_trace").await;
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].outcome, "success");
    assert_eq!(stops[0].journal_id.as_deref(), Some("51"));
    let TraceView::Reading {
        reading: Some(_),
        running: false,
        ..
    } = reading(&app, &viewer).await
    else {
        panic!("an ended trace");
    };
    // Nothing to stop now.
    let response = preview(&app, &operator, &stop()).await;
    assert_eq!(response.status(), 400);
    assert!(body(response).await.contains("No trace is running"));
    assert_eq!(
        *helper.trace_requests.lock().unwrap(),
        ["start_trace", "start_trace", "stop_trace"]
    );

    // The page shows the ended trace's counts to a viewer, without the form.
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(html.contains(r#"data-testid="trace""#), "{html}");
    assert!(html.contains("ended at"), "{html}");
    assert!(!html.contains(r#"data-testid="trace-form""#));
}
