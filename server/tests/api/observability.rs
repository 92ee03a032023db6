//! What a monitoring system and a returning viewer see: `/metrics` reports what the helper serves,
//! the dashboard's seed carries the history and the thresholds, and the day's history survives a
//! restart of the server.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::auth::Role;
use ctguard_app::{dashboard::live::LiveSample, dashboard::thresholds::Thresholds};
use ctguard_server::domain::MetricsToken;
use support::{FakeHelper, LiveEvents, eventually, spawn_app, spawn_app_in, spawn_app_with};

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn with_a_token_configured_metrics_answer_only_the_scraper_that_presents_it() {
    const TOKEN: &str = "prometheus-on-the-ops-net";
    let app = spawn_app_with(|settings| {
        settings.metrics_token = Some(MetricsToken::parse(TOKEN).unwrap());
    })
    .await;
    let scrape = |authorization: Option<String>| {
        let url = format!("{}/metrics", app.address);
        async move {
            let mut request = reqwest::Client::new().get(url);
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, challenge, response.text().await.unwrap())
        }
    };
    for refused in [None, Some("Bearer wrong-token-of-some-length".to_owned())] {
        let (status, challenge, text) = scrape(refused.clone()).await;
        assert_eq!(status, 401, "{refused:?}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert!(
            !text.contains("ctguard_"),
            "no metrics without the token: {text}"
        );
    }
    let (status, _, text) = scrape(Some(format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "ctguard_helper_up"), Some(0), "{text}");
}

#[tokio::test]
async fn metrics_report_what_the_helper_serves() {
    let app = spawn_app().await;
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "ctguard_helper_up"), Some(0), "{text}");
    for name in [
        "ctguard_conntrack_entries",
        "ctguard_blocks_active",
        "ctguard_helper_journal_write_failures_total",
    ] {
        assert_eq!(metric(&text, name), None, "no stale {name}");
    }

    let _helper = FakeHelper::start(&app.helper_socket, 5_000);
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;
    events
        .until("a reading with the kernel log", |sample| {
            matches!(
                sample,
                LiveSample::Up {
                    kernel_log: Some(_),
                    ..
                }
            )
        })
        .await;
    let (_, text) = app.get_text("/metrics").await;
    assert_eq!(metric(&text, "ctguard_helper_up"), Some(1), "{text}");
    assert_eq!(metric(&text, "ctguard_conntrack_entries"), Some(5_000));
    assert_eq!(metric(&text, "ctguard_conntrack_limit"), Some(65_536));
    // The increase since the server started (the fake helper's drop counter stays at 7), not
    // the kernel's sum, which falls when a CPU's 32-bit counter wraps.
    assert_eq!(metric(&text, "ctguard_conntrack_drop_total"), Some(0));
    assert_eq!(metric(&text, "ctguard_conntrack_early_drop_total"), Some(0));
    assert_eq!(
        metric(&text, "ctguard_kernel_log_table_full_messages"),
        Some(3)
    );
    assert_eq!(
        metric(&text, "ctguard_kernel_log_suppressed_messages"),
        Some(41)
    );
    assert!(text.contains("# TYPE ctguard_conntrack_drop_total counter"));
    assert!(text.contains("# TYPE ctguard_conntrack_entries gauge"));
    // The helper's own state, from the same status answer.
    assert_eq!(metric(&text, "ctguard_blocks_active"), Some(4));
    assert_eq!(
        metric(&text, "ctguard_helper_journal_write_failures_total"),
        Some(1)
    );
    assert!(text.contains("# TYPE ctguard_blocks_active gauge"));
    assert!(text.contains("# TYPE ctguard_helper_journal_write_failures_total counter"));
}

#[tokio::test]
async fn the_seed_carries_the_history_and_the_configured_thresholds() {
    let thresholds = Thresholds {
        warning_percent: 5.0,
        critical_percent: 50.0,
    };
    let app = spawn_app_with(|settings| settings.thresholds = thresholds).await;
    let _helper = FakeHelper::start(&app.helper_socket, 2_000);
    eventually("three readings in the history", || async {
        app.seed().await.history.recent.len() >= 3
    })
    .await;
    let seed = app.seed().await;
    assert_eq!(seed.thresholds, thresholds);
    assert!(seed.history.recent.iter().all(|point| point.count == 2_000));
    assert_eq!(seed.history.minutes.back().unwrap().count, 2_000);
    assert!(matches!(seed.sample, LiveSample::Up { .. }));
}

#[tokio::test]
async fn the_days_history_survives_a_restart() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 3_333);
    let saved = app.dir.path().join("state/history.json");
    eventually("the history to be saved", || {
        let saved = saved.clone();
        async move { std::fs::read_to_string(saved).is_ok_and(|text| text.contains("3333")) }
    })
    .await;
    helper.stop();
    let dir = app.stop();

    // A new server on the same state, with no helper: the day's minutes are back, the seconds not.
    let app = spawn_app_in(dir, |_| {}).await;
    let seed = app.seed().await;
    assert_eq!(seed.history.minutes.back().unwrap().count, 3_333);
    assert!(seed.history.recent.is_empty());
}
