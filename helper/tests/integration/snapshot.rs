//! Snapshot and Entries against conntrack-tools, in a router namespace with real flows.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::collections::BTreeMap;

use ctguard_protocol::{EntryFilter, HelperError, Protocol, Request, Response, TcpState};
use support::{
    HelperProcess, have_root,
    topology::{ATTACKER, CLIENT, Topology},
};

/// `conntrack -L` on the router, one line per entry.
fn listing(net: &Topology) -> Vec<String> {
    net.router
        .exec("conntrack", &["-L"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn a_snapshot_agrees_with_conntrack_tools() {
    if !have_root("a_snapshot_agrees_with_conntrack_tools") {
        return;
    }
    let net = Topology::new("snap");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &net.router.name]);
    net.flood(ATTACKER, 300, 10_000, false);
    net.flood(CLIENT, 40, 10_000, false);
    for _ in 0..3 {
        assert!(net.client_connects());
    }

    let Response::Snapshot { snapshot } = helper.session().ask(&Request::Snapshot {}) else {
        panic!("no snapshot");
    };
    let lines = listing(&net);
    assert_eq!(snapshot.total.entries, lines.len() as u64, "total entries");
    let unreplied = lines.iter().filter(|l| l.contains("[UNREPLIED]")).count() as u64;
    assert_eq!(snapshot.total.unreplied, unreplied);
    let assured = lines.iter().filter(|l| l.contains("[ASSURED]")).count() as u64;
    assert_eq!(snapshot.total.assured, assured);

    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_protocol: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        *by_source
            .entry(field(line, "src").unwrap().to_owned())
            .or_default() += 1;
        let protocol = line.split_whitespace().next().unwrap().to_owned();
        *by_protocol.entry(protocol).or_default() += 1;
    }
    let top = &snapshot.sources.top[0];
    assert_eq!(
        top.key.to_string(),
        ATTACKER,
        "the attacker tops the sources"
    );
    assert_eq!(top.mix.entries, by_source[ATTACKER]);
    assert_eq!(
        top.mix.unreplied, by_source[ATTACKER],
        "all its entries are unreplied"
    );
    for group in &snapshot.sources.top {
        assert_eq!(
            group.mix.entries,
            by_source[&group.key.to_string()],
            "{}",
            group.key
        );
    }
    for group in &snapshot.protocols.top {
        assert_eq!(group.mix.entries, by_protocol[&group.key], "{}", group.key);
    }
    let tcp_lines: Vec<&String> = lines.iter().filter(|l| l.starts_with("tcp")).collect();
    for group in &snapshot.tcp_states.top {
        let name = serde_json::to_value(group.key).unwrap();
        let name = name.as_str().unwrap();
        let reference = tcp_lines
            .iter()
            .filter(|l| l.split_whitespace().nth(3) == Some(name))
            .count() as u64;
        assert_eq!(group.mix.entries, reference, "tcp state {name}");
    }
    assert_eq!(snapshot.dports.top[0].key, 9999, "the flood's port");
    assert_eq!(
        snapshot.source_dports.top[0].key.source.to_string(),
        ATTACKER
    );
}

#[test]
fn entries_are_filtered_and_bounded() {
    if !have_root("entries_are_filtered_and_bounded") {
        return;
    }
    let net = Topology::new("ent");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &net.router.name]);
    net.flood(ATTACKER, 120, 10_000, false);
    assert!(net.client_connects());
    let mut session = helper.session();
    let ask = |session: &mut support::Connection, filter: EntryFilter| match session
        .ask(&Request::Entries { filter })
    {
        Response::Entries { entries, truncated } => (entries, truncated),
        other => panic!("{other:?}"),
    };
    let filter = EntryFilter {
        network: Some(format!("{ATTACKER}/32").parse().unwrap()),
        port: None,
        protocol: Some(Protocol::Udp),
        tcp_state: None,
        limit: 1_000,
    };
    let (entries, truncated) = ask(&mut session, filter.clone());
    assert_eq!(entries.len() as u64, net.entries_from(ATTACKER, None));
    assert!(!truncated);
    assert!(entries.iter().all(|e| e.unreplied && e.dport == Some(9999)));

    let (entries, truncated) = ask(
        &mut session,
        EntryFilter {
            limit: 10,
            ..filter
        },
    );
    assert_eq!(entries.len(), 10);
    assert!(truncated);

    let (entries, _) = ask(
        &mut session,
        EntryFilter {
            network: None,
            port: Some(8080),
            protocol: Some(Protocol::Tcp),
            tcp_state: Some(TcpState::TimeWait),
            limit: 100,
        },
    );
    assert!(!entries.is_empty(), "the client's finished connection");
    assert!(entries.iter().all(|e| e.source.to_string() == CLIENT));

    let response = session.ask(&Request::Entries {
        filter: EntryFilter {
            network: None,
            port: None,
            protocol: None,
            tcp_state: None,
            limit: 100_000,
        },
    });
    assert!(matches!(
        response,
        Response::Error {
            error: HelperError::LimitOutOfRange { .. }
        }
    ));
}
