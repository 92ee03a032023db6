//! The live feed as a browser meets it: the page and the event stream, with the helper down,
//! coming up, and going away again.

#![allow(clippy::unwrap_used)]

mod support;

use ctguard_app::{
    auth::Role,
    live::{HelperOutage, LiveSample},
};
use support::{FakeHelper, LiveEvents, spawn_app};

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
    let viewer = app.signed_in(Role::Viewer).await;
    let mut viewers = Vec::new();
    for _ in 0..20 {
        viewers.push(LiveEvents::connect(&app, &viewer).await);
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
