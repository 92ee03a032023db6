//! Who creates entries (issue 15), over real HTTP against the stand-in helper: `GET
//! /api/creators` and the page's server function need a session and serve viewers; a helper that
//! does not count is told apart (typed, not an error) and `/metrics` still answers, without
//! creator series; `/metrics` exports at most `--metrics-top-creators` per key at the answer's
//! rates; a suspect is said to create entries only when it is a top creator; the dashboard names
//! the top creator during an incident.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    auth::Role,
    dashboard::live::{LiveSample, TopCreator, TopTurnedAway},
    operators::creators::{CreatorsUnavailable, CreatorsView},
    operators::operations::{ListCreators, Suspects, SuspectsView},
    operators::suspicion::Reason,
};
use ctguard_protocol::{
    CreatorKey, Creators,
    creators::{TurnedAway, TurnedAwaySource},
};
use leptos::server_fn::ServerFn;
use support::{
    BUSY, FLOODER, FakeHelper, LiveEvents, TestApp, body, eventually, location, sample_creators,
    sample_snapshot, spawn_app, spawn_app_with,
};

/// A server function without arguments, as the UI calls it.
async fn call(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    app.post_form(client, path, &[]).await
}

async fn creators_json(app: &TestApp, client: &reqwest::Client, query: &str) -> (u16, String) {
    let response = client
        .get(format!("{}/api/creators{query}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, body(response).await)
}

fn available(view: CreatorsView) -> Creators {
    match view {
        CreatorsView::Available { creators } => creators,
        other => panic!("not available: {other:?}"),
    }
}

/// The lines of `/metrics` that are samples of `name` (with or without labels).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn until_creators_read(events: &mut LiveEvents, helper: &FakeHelper) {
    // The sampler asks for the creators with the kernel log; two asks after now mean the first
    // one's answer has been published.
    let asked = helper.creators_asked.lock().unwrap().len();
    eventually("two more creators reads by the sampler", || async {
        helper.creators_asked.lock().unwrap().len() >= asked + 2
    })
    .await;
    events
        .until("up", |s| matches!(s, LiveSample::Up { .. }))
        .await;
}

/// Waits for a live reading that names a top creator (the sampler asks every 10 readings).
async fn until_a_top_creator(events: &mut LiveEvents) {
    events
        .until("a reading with the top creator", |sample| {
            matches!(
                sample,
                LiveSample::Up {
                    top_creator: Some(_),
                    ..
                }
            )
        })
        .await;
}

#[tokio::test]
async fn the_creators_need_a_session_and_serve_every_role_from_viewer_up() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 5_000);
    helper.answer_creators(Some(sample_creators()));

    let anonymous = app.browser();
    let (status, text) = creators_json(&app, &anonymous, "").await;
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("203.0.113.66"));
    let page_view = app.get(&anonymous, "/api/creators").await;
    assert_eq!(page_view.status(), 303, "a browser is sent to sign in");
    assert_eq!(location(&page_view), "/login?next=/api/creators");
    assert_eq!(
        call(&app, &anonymous, ListCreators::PATH).await.status(),
        401
    );

    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let client = app.signed_in(role).await;
        let (status, text) = creators_json(&app, &client, "").await;
        assert_eq!(status, 200, "{role:?}: {text}");
        let creators = available(serde_json::from_str(&text).unwrap());
        let minute = creators.window(60).unwrap();
        for key in CreatorKey::ALL {
            assert_eq!(
                minute.list(key).unwrap().top.len(),
                10,
                "{key:?}: the default limit"
            );
        }
        let sources = minute.list(CreatorKey::Source).unwrap();
        assert_eq!(sources.top[0].address, FLOODER);
        assert_eq!(minute.per_second(sources.top[0].new_flows), 9_000);
        // The page's server function gives the same view.
        let response = call(&app, &client, ListCreators::PATH).await;
        assert_eq!(response.status(), 200, "{role:?}");
        assert_eq!(
            available(serde_json::from_str(&body(response).await).unwrap()),
            creators
        );
    }
    assert!(helper.creators_asked.lock().unwrap().contains(&10));

    let viewer = app.signed_in(Role::Viewer).await;
    let (status, text) = creators_json(&app, &viewer, "?limit=3").await;
    assert_eq!(status, 200);
    let three = available(serde_json::from_str(&text).unwrap());
    assert!(
        three
            .windows
            .iter()
            .flat_map(|w| &w.lists)
            .all(|list| list.top.len() == 3)
    );
    for bad in ["?limit=0", "?limit=51", "?limit=ten", "?key=source"] {
        let (status, text) = creators_json(&app, &viewer, bad).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert_eq!(text, "The only parameter is limit, 1 to 50.");
    }

    // The helper gone: the coarse outage, never its error.
    helper.stop();
    let (status, text) = creators_json(&app, &viewer, "").await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(
        text,
        "The privileged helper is not running or its socket cannot be reached."
    );
}

#[tokio::test]
async fn a_helper_that_does_not_count_is_told_apart_and_metrics_answer_without_creator_series() {
    let app = spawn_app().await;
    // Today's real helper: `creators` refused as unsupported.
    let helper = FakeHelper::start(&app.helper_socket, 5_000);
    let viewer = app.signed_in(Role::Viewer).await;
    let (status, text) = creators_json(&app, &viewer, "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({ "unavailable": { "reason": "unsupported" } })
    );

    let mut events = LiveEvents::connect(&app, &viewer).await;
    until_creators_read(&mut events, &helper).await;
    let sample = events
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
    assert!(matches!(
        sample,
        LiveSample::Up {
            top_creator: None,
            ..
        }
    ));
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(samples(&text, "ctguard_helper_up"), ["ctguard_helper_up 1"]);
    assert!(!text.contains("ctguard_creator_"), "{text}");
    assert!(!text.contains("ctguard_new_flows_per_second"), "{text}");

    // A helper whose counting table nftables refused: its words, and still no series.
    let mut refused = sample_creators();
    refused.counting = false;
    refused.problem = Some("nft refused the counting table: No such file or directory".into());
    refused.windows.clear();
    helper.answer_creators(Some(refused));
    let (status, text) = creators_json(&app, &viewer, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<CreatorsView>(&text).unwrap(),
        CreatorsView::Unavailable {
            reason: CreatorsUnavailable::NotCounting {
                problem: Some("nft refused the counting table: No such file or directory".into())
            }
        }
    );
    until_creators_read(&mut events, &helper).await;
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(!text.contains("ctguard_creator_"), "{text}");
    assert!(!text.contains("ctguard_new_flows_per_second"), "{text}");

    // The page says so, without a table.
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(
        html.contains(r#"data-testid="creators-unavailable""#),
        "{html}"
    );
    assert!(html.contains("counting table is not in place"));
    assert!(!html.contains(r#"data-testid="creators-source""#));
}

#[tokio::test]
async fn metrics_export_at_most_the_configured_creators_per_key_at_the_answers_rates() {
    const TOP: u16 = 3;
    let app = spawn_app_with(|settings| settings.metrics_top_creators = TOP).await;
    let helper = FakeHelper::start(&app.helper_socket, 5_000);
    helper.answer_creators(Some(sample_creators()));
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;
    until_a_top_creator(&mut events).await;
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    // The sampler asks for no more than it exports.
    assert!(
        helper
            .creators_asked
            .lock()
            .unwrap()
            .iter()
            .all(|&limit| limit == TOP)
    );

    let answer = sample_creators();
    let minute = answer.window(60).unwrap();
    let rate = |new_flows: u64| new_flows as f64 / f64::from(minute.covered_secs);
    assert_eq!(
        samples(&text, "ctguard_new_flows_per_second"),
        ["ctguard_new_flows_per_second 20000"]
    );
    let creators = samples(&text, "ctguard_creator_new_flows_per_second");
    assert_eq!(creators.len(), 4 * usize::from(TOP), "{text}");
    for key in CreatorKey::ALL {
        let label = format!("{{key=\"{}\",", key.as_str());
        let series: Vec<&&str> = creators.iter().filter(|l| l.contains(&label)).collect();
        assert_eq!(series.len(), usize::from(TOP), "{key:?}: {text}");
        let expected = &minute.list(key).unwrap().top;
        for (line, creator) in series.iter().zip(expected) {
            assert!(
                line.contains(&format!("address=\"{}\"", creator.address)),
                "{line}"
            );
            assert_eq!(value(line), rate(creator.new_flows), "{line}");
        }
        let uncounted = samples(&text, "ctguard_creator_uncounted_flows_per_second");
        let line = uncounted
            .iter()
            .find(|l| l.contains(&format!("{{key=\"{}\"}}", key.as_str())))
            .unwrap_or_else(|| panic!("{key:?} uncounted: {text}"));
        assert_eq!(value(line), 10.0);
    }
    assert!(text.contains(
        "ctguard_creator_new_flows_per_second{key=\"source\",address=\"203.0.113.66\",protocol=\"\",port=\"\"} 9000\n"
    ));
    assert!(text.contains(
        "ctguard_creator_new_flows_per_second{key=\"destination_source_port\",address=\"203.0.113.66\",protocol=\"udp\",port=\"53\"} 9000\n"
    ));
    assert!(
        text.contains("at most 12 series"),
        "the bound in the help: {text}"
    );
    assert!(text.contains("# TYPE ctguard_creator_new_flows_per_second gauge"));

    // Once the helper stops counting, the series go with the next read.
    helper.answer_creators(None);
    until_creators_read(&mut events, &helper).await;
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(!text.contains("ctguard_creator_"), "{text}");
}

#[tokio::test]
async fn a_suspect_is_said_to_create_entries_only_when_it_is_a_top_creator() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 20_060);
    helper.answer_snapshot(Some(sample_snapshot()));
    helper.answer_creators(Some(sample_creators()));
    let viewer = app.signed_in(Role::Viewer).await;
    let response = call(&app, &viewer, Suspects::PATH).await;
    assert_eq!(response.status(), 200);
    let view: SuspectsView = serde_json::from_str(&body(response).await).unwrap();
    let reasons = |address| {
        view.suspects
            .iter()
            .find(|s| s.address == address)
            .unwrap_or_else(|| panic!("{address} listed"))
            .reasons
            .clone()
    };
    let creates = |reasons: &[Reason]| {
        reasons
            .iter()
            .find(|r| matches!(r, Reason::Creates { .. }))
            .cloned()
    };
    // The flooder holds 60 entries at the walk and creates 9,000 a second.
    let flooder = reasons(FLOODER);
    assert_eq!(
        creates(&flooder),
        Some(Reason::Creates { per_second: 9_000 })
    );
    assert!(flooder.contains(&Reason::Unreplied { percent: 100.0 }));
    // The busy proxy holds most of the table and is listed among the creators at 2 a second:
    // not a top creator.
    let busy = reasons(BUSY);
    assert_eq!(creates(&busy), None, "{busy:?}");
    assert!(matches!(busy[0], Reason::LargeShare { .. }));

    // The page: the reason in words, the creators' tables beside the holders.
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(
        html.contains("creates 9,000 entries/s (last minute)"),
        "{html}"
    );
    for key in CreatorKey::ALL {
        assert!(
            html.contains(&format!(r#"data-testid="creators-{}""#, key.as_str())),
            "{key:?}"
        );
    }
    assert!(html.contains("creates 2 entries/s"), "the proxy's row");
    assert!(html.contains("uncounted (set full)"));
    assert!(
        html.contains("All new entries over the last minute: 20,000 entries/s ("),
        "{html}"
    );
    assert!(html.contains(r#"name="creators-window""#));

    // Without creators, the walk's reasons stand alone.
    helper.answer_creators(None);
    let operator = app.signed_in(Role::Operator).await;
    let response = call(&app, &operator, Suspects::PATH).await;
    assert_eq!(response.status(), 200);
    let view: SuspectsView = serde_json::from_str(&body(response).await).unwrap();
    assert!(view.suspects.iter().all(|s| creates(&s.reasons).is_none()));
    assert!(
        view.suspects
            .iter()
            .any(|s| s.address == FLOODER && s.is_suspicious())
    );
}

#[tokio::test]
async fn during_an_incident_the_dashboard_names_the_top_creator() {
    // 64,000 of 65,536: critical.
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 64_000);
    helper.answer_creators(Some(sample_creators()));
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;
    let top = TopCreator {
        address: "203.0.113.66".into(),
        per_second: 9_000,
    };
    events
        .until(
            "a reading with the top creator",
            |sample| matches!(sample, LiveSample::Up { top_creator: Some(t), .. } if *t == top),
        )
        .await;
    let html = body(app.get(&viewer, "/").await).await;
    assert!(html.contains(r#"data-testid="fill-banner""#), "{html}");
    assert!(html.contains(r#"data-testid="top-creator""#), "{html}");
    assert!(
        html.contains(
            "Top creator of new entries over the last minute: 203.0.113.66 creates 9,000 entries/s."
        ),
        "{html}"
    );
    assert!(html.contains(r#"href="/suspicious""#));

    // No incident, no line.
    let calm = spawn_app().await;
    let calm_helper = FakeHelper::start(&calm.helper_socket, 5_000);
    calm_helper.answer_creators(Some(sample_creators()));
    let viewer = calm.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&calm, &viewer).await;
    until_a_top_creator(&mut events).await;
    let html = body(calm.get(&viewer, "/").await).await;
    assert!(!html.contains(r#"data-testid="top-creator""#));
}

/// [`sample_creators`] with [`FLOODER`] turned away in every window: 200 packets a second, 1 a
/// second from everyone else and a few uncounted, beside the kernel's drop statistic.
fn creators_turning_away_the_flooder() -> Creators {
    let mut answer = sample_creators();
    for window in &mut answer.windows {
        let scale = |per_second: u64| per_second * u64::from(window.covered_secs);
        window.turned_away = TurnedAway {
            top: vec![TurnedAwaySource {
                address: FLOODER,
                packets: scale(200),
            }],
            rest: scale(1),
            uncounted: 5,
            kernel_drops: scale(201) + 5,
            unwatched_drops: 0,
        };
    }
    answer
}

#[tokio::test]
async fn the_suspicious_page_names_who_conntrack_turned_away_and_the_kernels_drops() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 5_000);
    helper.answer_creators(Some(creators_turning_away_the_flooder()));
    let viewer = app.signed_in(Role::Viewer).await;
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(html.contains("Turned away (table full)"), "{html}");
    assert!(
        html.contains(r#"data-testid="turned-away-sources""#),
        "{html}"
    );
    assert!(!html.contains(r#"data-testid="turned-away-none""#));
    // The minute window: 12,000 of the flooder's packets, 200 a second.
    assert!(html.contains("12,000 packets refused"), "{html}");
    assert!(html.contains("200 packets/s"), "{html}");
    assert!(
        html.contains(
            "Counted per source: 12,065 packets refused in all; the kernel counted 12,065 drops \
             in the same seconds."
        ),
        "{html}"
    );

    // A benign window: nothing dropped, no name, said plainly.
    helper.answer_creators(Some(sample_creators()));
    let html = body(app.get(&viewer, "/suspicious").await).await;
    assert!(html.contains(r#"data-testid="turned-away-none""#), "{html}");
    assert!(html.contains(
        "Nobody was turned away over the last minute: conntrack found room for every new flow."
    ));
    assert!(!html.contains("packets refused"), "{html}");
}

#[tokio::test]
async fn during_an_incident_the_dashboard_names_who_was_turned_away_and_not_when_nobody_was() {
    let app = spawn_app().await;
    let helper = FakeHelper::start(&app.helper_socket, 64_000);
    helper.answer_creators(Some(creators_turning_away_the_flooder()));
    let viewer = app.signed_in(Role::Viewer).await;
    let mut events = LiveEvents::connect(&app, &viewer).await;
    let top = TopTurnedAway {
        address: FLOODER.to_string(),
        packets: 12_000,
        per_second: 200,
    };
    events
        .until(
            "a reading with the top turned away",
            |sample| matches!(sample, LiveSample::Up { top_turned_away: Some(t), .. } if *t == top),
        )
        .await;
    let html = body(app.get(&viewer, "/").await).await;
    assert!(html.contains(r#"data-testid="top-turned-away""#), "{html}");
    assert!(
        html.contains(
            "Turned away most over the last minute (table full): 203.0.113.66 (12,000 packets \
             refused, 200/s)."
        ),
        "{html}"
    );

    // The same incident, but conntrack found room for everyone: no name.
    helper.answer_creators(Some(sample_creators()));
    until_creators_read(&mut events, &helper).await;
    events
        .until("a reading without anyone turned away", |sample| {
            matches!(
                sample,
                LiveSample::Up {
                    top_turned_away: None,
                    top_creator: Some(_),
                    ..
                }
            )
        })
        .await;
    let html = body(app.get(&viewer, "/").await).await;
    assert!(html.contains(r#"data-testid="fill-banner""#), "{html}");
    assert!(!html.contains(r#"data-testid="top-turned-away""#), "{html}");
}
