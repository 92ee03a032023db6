//! The live feed as a browser meets it: the page and the event stream, with the helper down,
//! coming up, and going away again; and a stream that ends with its login (logout, an admin
//! disabling the user or changing their role, expiry), at most four of them per login (issue 13,
//! item 8).

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    auth::Role,
    dashboard::live::{HelperOutage, LiveSample},
};
use std::time::{Duration, Instant};

use ctguard_app::{dashboard::live::SIGNED_OUT_EVENT, session::LOGOUT_PATH};
use ctguard_server::live_events::{RECHECK_EVERY, STREAMS_PER_LOGIN};
use serde_json::json;
use support::{
    FakeHelper, LiveEvents, cookie_value, password_of, session_cookie, spawn_app,
    spawn_app_on_the_system_clock, with_cookie,
};

fn is_up(sample: &LiveSample) -> bool {
    matches!(sample, LiveSample::Up { .. })
}

fn is_down(sample: &LiveSample) -> bool {
    matches!(sample, LiveSample::HelperDown { .. })
}

#[tokio::test]
async fn the_feed_reports_the_helper_down_then_follows_it_up_and_down_again() {
    let app = spawn_app().await;
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;

    let down = events.until("helper-down", is_down).await;
    let LiveSample::HelperDown { cause, .. } = down else {
        unreachable!()
    };
    assert_eq!(cause, HelperOutage::Unreachable);

    let helper = FakeHelper::start(&app.helper_socket, 1_234);
    let up = events.until("up", is_up).await;
    let LiveSample::Up { status, .. } = up else {
        unreachable!()
    };
    assert_eq!(status.count, 1_234);

    helper.stop();
    events.until("helper-down again", is_down).await;
}

#[tokio::test]
async fn the_dashboard_renders_the_newest_sample_on_the_server() {
    let app = spawn_app().await;
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;
    events.until("helper-down", is_down).await;

    let page = app.get(&viewer, "/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Helper unavailable."), "says so plainly");
    assert!(!html.contains(r#"data-testid="count""#));

    let _helper = FakeHelper::start(&app.helper_socket, 4_321);
    events.until("up", is_up).await;
    let html = app.get(&viewer, "/").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="count" data-value="4321""#),
        "the count is in the first render"
    );
    assert!(html.contains("4,321"));
    assert!(!html.contains("Helper unavailable."));
}

#[tokio::test]
async fn many_viewers_cost_the_helper_no_more_than_one() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 10);
    // Twenty viewers: five signed-in browsers with as many tabs as a login may open.
    let mut viewers = Vec::new();
    for _ in 0..20 / STREAMS_PER_LOGIN {
        let viewer = app.signed_in(Role::Viewer).await;
        for _ in 0..STREAMS_PER_LOGIN {
            viewers.push(LiveEvents::connect(&app, &viewer).await);
        }
    }
    let before = helper.requests();
    // Every viewer sees ten further samples...
    for viewer in &mut viewers {
        viewer.until("up", is_up).await;
    }
    let mut seen = 0;
    while seen < 10 {
        for viewer in &mut viewers {
            viewer.next().await;
        }
        seen += 1;
    }
    // ...which took about ten helper reads in all, not two hundred.
    let reads = helper.requests() - before;
    assert!(
        reads < 40,
        "{reads} helper reads served 20 viewers × 10 samples"
    );
}

/// The issue's bound: a login that ends closes its open streams within this.
const CLOSES_WITHIN: Duration = Duration::from_secs(15);

fn at_ms(sample: &LiveSample) -> u64 {
    match sample {
        LiveSample::Starting => 0,
        LiveSample::Up { at_ms, .. } | LiveSample::HelperDown { at_ms, .. } => *at_ms,
    }
}

fn now_ms() -> u64 {
    ctguard_server::sampler::now_ms()
}

#[tokio::test]
async fn logout_disable_and_a_role_change_close_the_live_streams_of_that_login() {
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let otto_here = app.signed_in(Role::Operator).await;
    let otto_there = app.signed_in(Role::Operator).await;
    let vera = app.signed_in(Role::Viewer).await;
    let mut signed_out = LiveEvents::connect(&app, &otto_here).await;
    let mut demoted = LiveEvents::connect(&app, &otto_there).await;
    let mut disabled = LiveEvents::connect(&app, &vera).await;

    let response = app.post_form(&otto_here, LOGOUT_PATH, &[]).await;
    assert_eq!(response.status(), 303);
    let last = signed_out
        .ends_within("the signed-out login's stream", CLOSES_WITHIN)
        .await;
    assert_eq!(last, [SIGNED_OUT_EVENT], "the browser is told why");
    // Only that login's: otto's other browser is still fed after its own check has run.
    let later = now_ms() + u64::try_from(RECHECK_EVERY.as_millis()).unwrap() + 500;
    demoted
        .until("a sample after the other login's check", |s| {
            at_ms(s) > later
        })
        .await;

    let role = json!({ "kind": "set_role", "username": "otto", "role": "viewer" });
    assert_eq!(app.change_user(&admin, role).await.status(), 200);
    let disable = json!({ "kind": "set_disabled", "username": "vera", "disabled": true });
    assert_eq!(app.change_user(&admin, disable).await.status(), 200);
    let (demoted, disabled) = tokio::join!(
        demoted.ends_within("the demoted user's stream", CLOSES_WITHIN),
        disabled.ends_within("the disabled user's stream", CLOSES_WITHIN),
    );
    assert_eq!(demoted, [SIGNED_OUT_EVENT]);
    assert_eq!(disabled, [SIGNED_OUT_EVENT]);
    // Reconnecting (what a browser's EventSource does next) is refused.
    assert_eq!(support::live_status(&app, &otto_there).await, 401);
    assert_eq!(support::live_status(&app, &vera).await, 401);
}

#[tokio::test]
async fn an_idle_session_closes_its_live_stream_and_one_in_use_keeps_it() {
    const IDLE: Duration = Duration::from_secs(2);
    let app = spawn_app_on_the_system_clock(|settings| settings.session.idle = IDLE).await;
    let response = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    let browser = with_cookie(&cookie_value(&session_cookie(&response).unwrap()));
    let mut events = LiveEvents::connect(&app, &browser).await;

    // Another tab keeps the session in use past twice its idle timeout: the stream stays.
    let busy_from = Instant::now();
    while busy_from.elapsed() < 2 * IDLE + RECHECK_EVERY {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(support::live_status(&app, &browser).await, 200);
    }
    let now = now_ms();
    events
        .until("a sample while the session is in use", |s| at_ms(s) > now)
        .await;

    // Then nothing but the stream: it is not activity, and the idle timeout ends it.
    let last = events
        .ends_within("the idle session's stream", CLOSES_WITHIN)
        .await;
    assert_eq!(last, [SIGNED_OUT_EVENT]);
    assert_eq!(support::live_status(&app, &browser).await, 401);
}

#[tokio::test]
async fn a_login_holds_at_most_four_live_streams() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_LOGIN {
        open.push(LiveEvents::connect(&app, &vera).await);
    }
    assert_eq!(support::live_status(&app, &vera).await, 429, "a fifth");
    assert_eq!(support::live_status(&app, &vera).await, 429, "and a sixth");

    // Per login: vera's other browser has its own.
    let elsewhere = app.signed_in(Role::Viewer).await;
    let _there = LiveEvents::connect(&app, &elsewhere).await;

    // A closed tab gives its place back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let _reopened = loop {
        let response = vera
            .get(format!("{}/api/live", app.address))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break response;
        }
        assert_eq!(response.status(), 429);
        assert!(
            Instant::now() < deadline,
            "the closed stream's place is never free"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(support::live_status(&app, &vera).await, 429, "full again");
}
