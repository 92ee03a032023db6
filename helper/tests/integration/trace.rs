//! Traces against a real kernel: the router namespace of the block tests, a trace on the victim,
//! floods of known size, and what a user checks afterwards: the counts against `conntrack`, the
//! table gone at the deadline (also when the helper was killed), the journal's records.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::Duration;

use ctguard_protocol::{
    BlockTarget, HelperError, JournalAction, JournalEvent, JournalPage, Protocol, Request,
    Response, ShortText, StartTraceRequest, StopTraceRequest,
    trace::{TraceEnd, TraceReading},
};
use support::{
    Connection, HelperProcess, have_root,
    topology::{ADMIN, ATTACKER, CLIENT, GUEST, ROUTER_INET, Topology},
    wait_for,
};

fn text(s: &str) -> ShortText {
    ShortText::new(s).unwrap()
}

fn start(filter: &str, seconds: u32) -> Request {
    Request::StartTrace(StartTraceRequest {
        filter: filter.parse::<BlockTarget>().unwrap(),
        seconds,
        reason: text("who floods the guest"),
        requested_by: ADMIN.parse().unwrap(),
        actor: text("alice"),
    })
}

fn reading(session: &mut Connection) -> Option<(TraceReading, bool)> {
    match session.ask(&Request::Trace {}) {
        Response::Trace { reading, running } => reading.map(|r| (*r, running)),
        other => panic!("{other:?}"),
    }
}

fn router_has_trace_table(net: &Topology) -> bool {
    net.router
        .exec("nft", &["list", "tables"])
        .contains("ctguard_trace")
}

fn journal_actions(session: &mut Connection) -> Vec<JournalAction> {
    let Response::Journal { records, .. } = session.ask(&Request::Journal {
        page: JournalPage {
            from: 0,
            limit: JournalPage::MAX_LIMIT,
        },
    }) else {
        panic!("no journal page");
    };
    records
        .into_iter()
        .filter_map(|record| match record.event {
            JournalEvent::Intent { action, .. } => Some(action),
            _ => None,
        })
        .collect()
}

fn helper_for(topology: &Topology) -> HelperProcess {
    HelperProcess::start(&[
        "--group",
        "root",
        "--netns",
        &topology.router.name,
        "--count-creators",
        "off",
    ])
}

#[test]
fn a_trace_names_the_source_of_new_flows_to_a_victim_and_ends_by_itself() {
    if !have_root("a_trace_names_the_source_of_new_flows_to_a_victim_and_ends_by_itself") {
        return;
    }
    let net = Topology::new("trc");
    let helper = helper_for(&net);
    let mut session = helper.session();
    let started = session.ask(&start(&format!("to {GUEST}"), 4));
    let Response::TraceStarted { trace, .. } = started else {
        panic!("{started:?}");
    };
    assert_eq!(trace.ends_at - trace.started_at, 4);
    let before = net.router.conntrack_count();
    net.flood(ATTACKER, 200, 20000, false);
    net.flood(CLIENT, 20, 40000, false);
    let created = net.router.conntrack_count() - before;
    let (counts, running) = reading(&mut session).unwrap();
    assert!(running);
    assert_eq!(created, 220, "the kernel's count of the floods' entries");
    assert_eq!(counts.new_flows, 220, "each matching new flow, once");
    let sources: Vec<_> = counts
        .sources
        .iter()
        .map(|c| (c.address.unwrap().to_string(), c.new_flows))
        .collect();
    assert_eq!(
        sources,
        [(ATTACKER.to_owned(), 200), (CLIENT.to_owned(), 20)],
        "the flooder first"
    );
    assert_eq!(
        (
            counts.destination_ports[0].protocol,
            counts.destination_ports[0].port,
            counts.destination_ports[0].new_flows
        ),
        (Some(Protocol::Udp), Some(9999), 220)
    );
    let listing = net
        .router
        .exec("nft", &["list", "table", "ip", "ctguard_trace"]);
    assert!(
        !listing.contains(" log"),
        "nothing goes to syslog: {listing}"
    );
    wait_for(
        "the trace to end at its deadline",
        Duration::from_secs(10),
        || !router_has_trace_table(&net),
    );
    let (last, running) = reading(&mut session).unwrap();
    assert!(!running);
    assert_eq!(last.new_flows, 220, "the final counts stay readable");
    let actions = journal_actions(&mut session);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, JournalAction::StartTrace { seconds: 4, .. })),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| matches!(
            a,
            JournalAction::EndTrace {
                ended: TraceEnd::Expired,
                filter: Some(_),
                ..
            }
        )),
        "{actions:?}"
    );
}

#[test]
fn a_killed_helpers_trace_stops_matching_in_the_kernel_and_the_next_start_removes_it() {
    if !have_root(
        "a_killed_helpers_trace_stops_matching_in_the_kernel_and_the_next_start_removes_it",
    ) {
        return;
    }
    let net = Topology::new("trckill");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--group",
        "root",
        "--netns",
        &net.router.name,
        "--count-creators",
        "off",
    ];
    let mut helper = HelperProcess::start_in(dir.path(), &args);
    let mut session = helper.session();
    assert!(matches!(
        session.ask(&start(&format!("to {GUEST}"), 2)),
        Response::TraceStarted { .. }
    ));
    helper.kill();
    assert!(router_has_trace_table(&net), "a crash leaves the table");
    // Past the deadline the filter's element has expired: nothing matches any more.
    std::thread::sleep(Duration::from_millis(2500));
    net.flood(ATTACKER, 50, 20000, false);
    let listing = net.router.exec(
        "nft",
        &["-j", "list", "counter", "ip", "ctguard_trace", "matched"],
    );
    assert!(
        listing.contains("\"packets\": 0") || listing.contains("\"packets\":0"),
        "the kernel stopped matching at the deadline: {listing}"
    );
    let next = HelperProcess::start_in(dir.path(), &args);
    wait_for(
        "the next start to remove the table",
        Duration::from_secs(10),
        || !router_has_trace_table(&net),
    );
    let mut session = next.session();
    let actions = journal_actions(&mut session);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            JournalAction::EndTrace {
                ended: TraceEnd::LeftByEarlierRun,
                ..
            }
        )),
        "{actions:?}"
    );
}

#[test]
fn one_trace_at_a_time_within_its_bounds_and_a_stop_removes_it() {
    if !have_root("one_trace_at_a_time_within_its_bounds_and_a_stop_removes_it") {
        return;
    }
    let net = Topology::new("trcone");
    let helper = helper_for(&net);
    let mut session = helper.session();
    for seconds in [0, 601] {
        let refused = session.ask(&start(&format!("to {GUEST}"), seconds));
        assert!(
            matches!(
                refused,
                Response::Error {
                    error: HelperError::TraceLength { max: 600, .. }
                }
            ),
            "{refused:?}"
        );
    }
    let stop = Request::StopTrace(StopTraceRequest {
        reason: text("seen enough"),
        requested_by: ADMIN.parse().unwrap(),
        actor: text("alice"),
    });
    assert!(matches!(
        session.ask(&stop),
        Response::Error {
            error: HelperError::NoTrace
        }
    ));
    assert!(!router_has_trace_table(&net), "a refusal leaves nothing");
    assert!(matches!(
        session.ask(&start(&format!("udp from {ATTACKER}"), 600)),
        Response::TraceStarted { .. }
    ));
    // Parallel starts: exactly none gets in beside the running one.
    let socket = helper.socket.clone();
    let refusals: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let socket = socket.clone();
                scope.spawn(move || {
                    support::session_at(&socket).ask(&start(&format!("to {ROUTER_INET}"), 30))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        refusals.iter().all(|r| matches!(
            r,
            Response::Error {
                error: HelperError::TraceRunning { .. }
            }
        )),
        "{refusals:?}"
    );
    assert!(matches!(session.ask(&stop), Response::TraceStopped { .. }));
    assert!(!router_has_trace_table(&net), "a stop removes the table");
    let actions = journal_actions(&mut session);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, JournalAction::StartTrace { .. }))
            .count(),
        1,
        "refused starts are not journaled as starts: {actions:?}"
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        JournalAction::EndTrace {
            ended: TraceEnd::Stopped,
            ..
        }
    )));
}
