//! Tuning as the server enforces it: everyone reads the settings, only admins change them, only
//! through a confirmed preview computed from the live values; every change and every refusal is
//! audited, a change can be reverted from its audit record, and a value changed behind the panel's
//! back shows as such; two previews of one value confirmed at once change it once. The helper is a
//! stand-in; the end-to-end suite writes the real /proc/sys.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    admin::audit::{AuditPage, QueryAudit},
    auth::Role,
    confirm::Preview,
    operators::tuning::{LoadTuning, TuningView},
    operators::{
        operations::{ApplyOperation, PreviewOperation},
        tuning::{ApplyTuning, PreviewTuning},
    },
};
use ctguard_protocol::SysctlKey;
use ctguard_server::{audit::AuditStore, db};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use support::{FakeHelper, TestApp, spawn_app};

fn set(key: SysctlKey, value: u64) -> Value {
    json!({ "kind": "set_sysctl", "key": key.name(), "value": value, "persist": true })
}

async fn settings(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    app.post_form(client, LoadTuning::PATH, &[]).await
}

async fn preview(app: &TestApp, client: &reqwest::Client, operation: Value) -> reqwest::Response {
    app.preview_operation(client, PreviewTuning::PATH, &operation)
        .await
}

async fn apply(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    operation: Value,
) -> reqwest::Response {
    app.apply_operation(client, ApplyTuning::PATH, token, &operation)
        .await
}

/// Previews and confirms, returning the preview and the outcome message.
async fn confirmed(app: &TestApp, client: &reqwest::Client, operation: Value) -> (Preview, String) {
    let response = preview(app, client, operation.clone()).await;
    assert_eq!(response.status(), 200);
    let shown: Preview = response.json().await.unwrap();
    let done = apply(app, client, &shown.token, operation).await;
    assert_eq!(done.status(), 200);
    (shown, done.json().await.unwrap())
}

async fn audit_records(app: &TestApp) -> Vec<ctguard_server::audit::AuditRecord> {
    AuditStore::new(db::open(&app.database).await.unwrap())
        .recent(50)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_role_reads_the_settings_with_recommendations() {
    let app = spawn_app().await;
    let _helper = FakeHelper::start(&app.helper_socket, 1_000);
    let viewer = app.signed_in(Role::Viewer).await;
    let response = settings(&app, &viewer).await;
    assert_eq!(response.status(), 200);
    let view: TuningView = response.json().await.unwrap();
    assert_eq!(view.rows.len(), SysctlKey::ALL.len());
    let row = |key| view.rows.iter().find(|r| r.key == key).unwrap();
    let established = row(SysctlKey::TcpTimeoutEstablished);
    assert_eq!(established.current, Some(432_000));
    assert_eq!(
        established.recommended,
        Some(432_000),
        "keep the default: RFC 5382's 2 h 4 min is a floor, and stale entries do not fill the table"
    );
    assert!(established.reasoning.contains("RFC 5382"));
    assert!(established.wrong_when.contains("second confirmation"));
    // 8 GiB of RAM and a peak of 1,000: twice the peak is far below the kernel's own default for
    // this RAM (262,144), which is the advice; 1/16 of RAM (2 million entries) is only the ceiling.
    let max = row(SysctlKey::NfConntrackMax);
    assert_eq!(max.recommended, Some(262_144));
    assert!(max.cost.contains("264 B per entry"), "{}", max.cost);
    // 65,536 entries in 16,384 buckets: chains of 8. Never fewer buckets; here, as many as entries.
    let buckets = row(SysctlKey::NfConntrackBuckets);
    assert_eq!(buckets.recommended, Some(65_536));
    assert!(
        buckets.reasoning.contains("chains of 8.0"),
        "{}",
        buckets.reasoning
    );
    assert!(
        row(SysctlKey::NeighGcThresh3)
            .reasoning
            .contains("neighbor table overflow!")
    );
    assert!(view.rows.iter().all(|r| r.last_set.is_none()));
    assert_eq!(
        settings(&app, &app.browser()).await.status(),
        401,
        "not without signing in"
    );
}

#[tokio::test]
async fn an_admin_sets_a_value_after_a_preview_that_shows_its_cost_and_it_is_audited() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;

    let operation = set(SysctlKey::NfConntrackMax, 131_072);
    let response = preview(&app, &admin, operation.clone()).await;
    assert_eq!(response.status(), 200);
    let shown: Preview = response.json().await.unwrap();
    assert_eq!(shown.title, "Set net.netfilter.nf_conntrack_max");
    let changes = shown.changes.join("\n");
    assert!(
        changes.contains("65,536 entries → 131,072 entries"),
        "{changes}"
    );
    assert!(
        changes.contains("a full table would take 33.0 MiB of kernel memory (now 16.5 MiB)"),
        "{changes}"
    );
    // 131,072 entries in today's 16,384 buckets would make chains of 16: the buckets come along.
    assert!(
        changes.contains(
            "net.netfilter.nf_conntrack_buckets: 16,384 buckets → 131,072 buckets, in the same change"
        ),
        "{changes}"
    );
    assert!(changes.contains("kept after reboot"), "{changes}");
    assert!(
        shown.warnings.iter().any(|w| w.contains("Host-wide")),
        "{:?}",
        shown.warnings
    );
    assert_eq!(
        helper.sysctl(SysctlKey::NfConntrackMax),
        65_536,
        "a preview changes nothing"
    );

    let done = apply(&app, &admin, &shown.token, operation.clone()).await;
    assert_eq!(done.status(), 200);
    let message: String = done.json().await.unwrap();
    assert!(message.contains("is now 131,072 entries (was 65,536 entries)"));
    assert!(
        message.contains("net.netfilter.nf_conntrack_buckets is now 131,072 buckets"),
        "{message}"
    );
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackMax), 131_072);
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackBuckets), 131_072);
    let replay = apply(&app, &admin, &shown.token, operation).await;
    assert_ne!(replay.status(), 200, "a token confirms one change only");

    let records = audit_records(&app).await;
    let success = records
        .iter()
        .find(|r| r.action == "set_sysctl" && r.outcome == "success")
        .unwrap();
    assert_eq!(success.actor.as_deref(), Some("ada"));
    assert_eq!(
        success.target.as_deref(),
        Some("net.netfilter.nf_conntrack_max")
    );
    assert_eq!(success.journal_id.as_deref(), Some("77"));
    assert!(success.preview.as_deref().unwrap().contains("→ 131,072"));
    assert!(
        records
            .iter()
            .any(|r| r.action == "set_sysctl" && r.outcome == "refused"),
        "the replay is audited"
    );

    let view: TuningView = settings(&app, &admin).await.json().await.unwrap();
    let max = view
        .rows
        .iter()
        .find(|r| r.key == SysctlKey::NfConntrackMax)
        .unwrap();
    assert_eq!(max.last_set.as_ref().unwrap().value, 131_072);
    assert!(!max.changed_behind_our_back());
}

#[tokio::test]
async fn a_value_changed_between_preview_and_confirm_or_out_of_bounds_is_refused() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;

    let operation = set(SysctlKey::TcpTimeoutEstablished, 7_440);
    let shown: Preview = preview(&app, &admin, operation.clone())
        .await
        .json()
        .await
        .unwrap();
    helper.change_behind_the_panels_back(SysctlKey::TcpTimeoutEstablished, 86_400);
    let stale = apply(&app, &admin, &shown.token, operation).await;
    assert_ne!(stale.status(), 200);
    assert!(stale.text().await.unwrap().contains("changed"));
    assert_eq!(helper.sysctl(SysctlKey::TcpTimeoutEstablished), 86_400);

    let too_short = preview(&app, &admin, set(SysctlKey::TcpTimeoutEstablished, 10)).await;
    assert_ne!(too_short.status(), 200);
    assert!(
        too_short
            .text()
            .await
            .unwrap()
            .contains("must be within 60..=2592000"),
        "the bounds, in words (a minute to 30 days)"
    );
    let short: Preview = preview(&app, &admin, set(SysctlKey::TcpTimeoutEstablished, 180))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        short.warnings.iter().any(|w| w.contains("RFC 5382")),
        "{:?}",
        short.warnings
    );
    let refused = audit_records(&app)
        .await
        .into_iter()
        .filter(|r| r.action == "set_sysctl" && r.outcome == "refused")
        .count();
    assert_eq!(
        refused, 2,
        "the stale confirmation and the out-of-bounds value"
    );
}

#[tokio::test]
async fn operators_and_viewers_cannot_tune_and_an_operator_trying_is_audited() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let operation = set(SysctlKey::NfConntrackMax, 131_072);
    for role in [Role::Viewer, Role::Operator] {
        let client = app.signed_in(role).await;
        assert_eq!(
            preview(&app, &client, operation.clone()).await.status(),
            403
        );
        assert_eq!(
            apply(&app, &client, "forged", operation.clone())
                .await
                .status(),
            403
        );
    }
    // Through the operators' own endpoints the server function refuses it, and says so in the log.
    let operator = app.signed_in(Role::Operator).await;
    let sneaky = app
        .post_json(
            &operator,
            PreviewOperation::PATH,
            &json!({ "operation": operation }),
        )
        .await;
    assert_ne!(sneaky.status(), 200);
    assert!(sneaky.text().await.unwrap().contains("role does not allow"));
    let sneaky = app
        .post_json(
            &operator,
            ApplyOperation::PATH,
            &json!({ "token": "forged", "operation": operation }),
        )
        .await;
    assert_ne!(sneaky.status(), 200);
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackMax), 65_536);
    let records = audit_records(&app).await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "set_sysctl"
                && r.outcome == "refused"
                && r.actor.as_deref() == Some("otto"))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_change_is_reverted_from_its_audit_record_and_drift_is_shown() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;
    confirmed(&app, &admin, set(SysctlKey::TcpTimeoutEstablished, 7_440)).await;
    assert_eq!(helper.sysctl(SysctlKey::TcpTimeoutEstablished), 7_440);

    // The audit page offers the revert on that record, and only there.
    let page: AuditPage = app
        .post_json(&admin, QueryAudit::PATH, &json!({ "query": {} }))
        .await
        .json()
        .await
        .unwrap();
    let record = page
        .entries
        .iter()
        .find(|e| e.action == "set_sysctl" && e.outcome == "success")
        .unwrap();
    assert!(record.revertible);
    assert_eq!(record.journal_id.as_deref(), Some("77"));
    let login = page.entries.iter().find(|e| e.action == "login").unwrap();
    assert!(!login.revertible);

    // Another agent sets it back: the Tuning page says so.
    helper.change_behind_the_panels_back(SysctlKey::TcpTimeoutEstablished, 432_000);
    let view: TuningView = settings(&app, &admin).await.json().await.unwrap();
    let row = view
        .rows
        .iter()
        .find(|r| r.key == SysctlKey::TcpTimeoutEstablished)
        .unwrap();
    assert!(row.changed_behind_our_back());
    assert_eq!(row.last_set.as_ref().unwrap().audit_id, record.id);

    // Reverting puts back the value the change replaced.
    helper.change_behind_the_panels_back(SysctlKey::TcpTimeoutEstablished, 7_440);
    let revert = json!({ "kind": "revert_sysctl", "audit_id": record.id });
    let (shown, message) = confirmed(&app, &admin, revert).await;
    assert_eq!(
        shown.title,
        format!(
            "Revert audit record #{}: net.netfilter.nf_conntrack_tcp_timeout_established",
            record.id
        )
    );
    assert!(shown.changes[0].contains("7440 s (2 h 4 min) → 432000 s (5 d)"));
    assert!(message.contains("is now 432000 s"));
    assert_eq!(helper.sysctl(SysctlKey::TcpTimeoutEstablished), 432_000);
    let records = audit_records(&app).await;
    assert!(
        records
            .iter()
            .any(|r| r.action == "revert_sysctl" && r.outcome == "success")
    );

    // A record that is not a sysctl change cannot be reverted, and the attempt is audited.
    let bogus = json!({ "kind": "revert_sysctl", "audit_id": login.id });
    let refused = preview(&app, &admin, bogus).await;
    assert_ne!(refused.status(), 200);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("not a successful sysctl change")
    );
    assert!(
        audit_records(&app)
            .await
            .iter()
            .any(|r| r.action == "revert_sysctl" && r.outcome == "refused")
    );
}

#[tokio::test]
async fn a_raised_limit_brings_the_buckets_only_when_the_chains_would_pass_four() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;
    helper.change_behind_the_panels_back(SysctlKey::NfConntrackBuckets, 65_536);

    // 131,072 entries in 65,536 buckets: chains of 4, the buckets stay.
    let (shown, message) = confirmed(&app, &admin, set(SysctlKey::NfConntrackMax, 131_072)).await;
    let changes = shown.changes.join("\n");
    assert!(!changes.contains("nf_conntrack_buckets"), "{changes}");
    assert!(!message.contains("buckets"), "{message}");
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackBuckets), 65_536);

    // 1,048,576 would make chains of 32, past 4: the buckets follow, one per entry.
    let (shown, _) = confirmed(&app, &admin, set(SysctlKey::NfConntrackMax, 1_048_576)).await;
    let changes = shown.changes.join("\n");
    assert!(
        changes.contains("65,536 buckets → 1,048,576 buckets"),
        "{changes}"
    );
    assert!(changes.contains("chaintoolong"), "{changes}");
    assert!(changes.contains("chains of 32.0"), "{changes}");
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackBuckets), 1_048_576);
    assert_eq!(helper.sysctl(SysctlKey::NfConntrackMax), 1_048_576);
    assert!(
        shown
            .warnings
            .iter()
            .any(|w| w.contains("each network namespace")),
        "{:?}",
        shown.warnings
    );
}

#[tokio::test]
async fn fewer_buckets_warn_and_persisting_them_says_the_limit_follows_hashsize() {
    let app = spawn_app().await;
    let _helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;

    let shown: Preview = preview(&app, &admin, set(SysctlKey::NfConntrackBuckets, 262_144))
        .await
        .json()
        .await
        .unwrap();
    let changes = shown.changes.join("\n");
    assert!(
        changes.contains("max = 8 × hashsize = 2,097,152 entries"),
        "{changes}"
    );
    assert!(changes.contains("persist the limit too"), "{changes}");
    // The stand-in's nf_conntrack is a module: modprobe.d sizes it, no kernel command line.
    assert!(!changes.contains("kernel command line"), "{changes}");

    let fewer: Preview = preview(&app, &admin, set(SysctlKey::NfConntrackBuckets, 8_192))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        fewer
            .warnings
            .iter()
            .any(|w| w.contains("Fewer buckets than now")),
        "{:?}",
        fewer.warnings
    );
    assert!(
        fewer.warnings.iter().any(|w| w.contains("chaintoolong")),
        "chains of 16: {:?}",
        fewer.warnings
    );
}

#[tokio::test]
async fn an_established_timeout_below_rfc_5382_takes_a_second_explicit_confirmation() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    let admin = app.signed_in(Role::Admin).await;
    let operation = set(SysctlKey::TcpTimeoutEstablished, 180);

    let first: Preview = preview(&app, &admin, operation.clone())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.contains("two confirmations")),
        "{:?}",
        first.warnings
    );
    let once = apply(&app, &admin, &first.token, operation.clone()).await;
    assert_ne!(once.status(), 200);
    let text = once.text().await.unwrap();
    assert!(
        text.contains(ctguard_app::operators::tuning::advice::FIRST_OF_TWO_CONFIRMATIONS),
        "{text}"
    );
    assert_eq!(
        helper.sysctl(SysctlKey::TcpTimeoutEstablished),
        432_000,
        "one confirmation changes nothing"
    );

    // Another admin's session has not confirmed anything.
    let other = app.signed_in(Role::Admin).await;
    let theirs: Preview = preview(&app, &other, operation.clone())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !theirs.title.contains("second confirmation"),
        "{}",
        theirs.title
    );

    let (second, message) = confirmed(&app, &admin, operation.clone()).await;
    assert!(
        second.title.contains("second confirmation"),
        "{}",
        second.title
    );
    assert!(message.contains("is now 180 s (3 min)"), "{message}");
    assert_eq!(helper.sysctl(SysctlKey::TcpTimeoutEstablished), 180);

    // The consent was spent: going below the floor again starts over.
    helper.change_behind_the_panels_back(SysctlKey::TcpTimeoutEstablished, 432_000);
    let again: Preview = preview(&app, &admin, operation).await.json().await.unwrap();
    assert!(
        !again.title.contains("second confirmation"),
        "{}",
        again.title
    );

    // A value at the floor takes one confirmation.
    confirmed(&app, &admin, set(SysctlKey::TcpTimeoutEstablished, 7_440)).await;
    assert_eq!(helper.sysctl(SysctlKey::TcpTimeoutEstablished), 7_440);
}

#[test]
fn the_tuning_endpoints_have_fixed_paths_the_end_to_end_suite_calls() {
    assert_eq!(PreviewTuning::PATH, "/api/preview_tuning");
    assert_eq!(ApplyTuning::PATH, "/api/apply_tuning");
}

#[tokio::test]
async fn two_previews_of_one_value_confirmed_at_once_change_it_once() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 1_000);
    // Each write takes a while to land: time for the other confirmation to check the value the
    // first one is about to change.
    helper
        .change_delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let ada_here = app.signed_in(Role::Admin).await;
    let ada_there = app.signed_in(Role::Admin).await;
    let to_a_day = set(SysctlKey::TcpTimeoutEstablished, 86_400);
    let to_two_days = set(SysctlKey::TcpTimeoutEstablished, 172_800);
    let here: Preview = preview(&app, &ada_here, to_a_day.clone())
        .await
        .json()
        .await
        .unwrap();
    let there: Preview = preview(&app, &ada_there, to_two_days.clone())
        .await
        .json()
        .await
        .unwrap();

    let (first, second) = tokio::join!(
        apply(&app, &ada_here, &here.token, to_a_day),
        apply(&app, &ada_there, &there.token, to_two_days),
    );
    let outcomes = [
        (first.status().as_u16(), first.text().await.unwrap(), 86_400),
        (
            second.status().as_u16(),
            second.text().await.unwrap(),
            172_800,
        ),
    ];
    let applied: Vec<_> = outcomes.iter().filter(|(s, ..)| *s == 200).collect();
    assert_eq!(applied.len(), 1, "exactly one of them: {outcomes:?}");
    let refused = outcomes.iter().find(|(s, ..)| *s != 200).unwrap();
    assert!(refused.1.contains("changed"), "{refused:?}");
    assert_eq!(
        helper.sysctl(SysctlKey::TcpTimeoutEstablished),
        applied[0].2,
        "the value the applied preview promised"
    );

    let records = audit_records(&app).await;
    let audited = |outcome: &str| {
        records
            .iter()
            .filter(|r| r.action == "set_sysctl" && r.outcome == outcome)
            .count()
    };
    assert_eq!(audited("success"), 1);
    assert_eq!(audited("refused"), 1);
}
