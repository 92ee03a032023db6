//! Creators of entries against a real kernel: the router namespace of the block tests, floods
//! of known size from known sources, the helper's counting table read back through the socket
//! and checked against `conntrack -C` and nft's own listing in the same window.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use ctguard_protocol::{
    CreatorKey, Creators, HelperError, Protocol, Request, Response, creators::WINDOWS_SECS,
};
use support::{
    Connection, HelperProcess, have_root,
    topology::{ATTACKER, CLIENT, GUEST, Topology},
    wait_for,
};

fn helper_for(topology: &Topology, extra: &[&str]) -> HelperProcess {
    let mut args = vec![
        "--group",
        "root",
        "--netns",
        &topology.router.name,
        "--creator-sample-secs",
        "1",
    ];
    args.extend_from_slice(extra);
    HelperProcess::start(&args)
}

fn creators(session: &mut Connection, limit: u16) -> Creators {
    match session.ask(&Request::Creators { limit }) {
        Response::Creators { creators } => *creators,
        other => panic!("{other:?}"),
    }
}

/// The new flows `address` created in the last minute, by one key's list.
fn created_by(creators: &Creators, key: CreatorKey, address: &str) -> u64 {
    let window = creators.window(60).unwrap();
    window
        .list(key)
        .unwrap()
        .top
        .iter()
        .filter(|c| c.address.to_string() == address)
        .map(|c| c.new_flows)
        .sum()
}

/// Asks until the counts show `condition`, within the deadline: a reading comes every second.
fn creators_when(
    session: &mut Connection,
    what: &str,
    condition: impl Fn(&Creators) -> bool,
) -> Creators {
    let mut last = None;
    wait_for(what, Duration::from_secs(20), || {
        let answer = creators(session, 10);
        let met = condition(&answer);
        last = Some(answer);
        met
    });
    last.unwrap()
}

fn router_tables(net: &Topology) -> String {
    net.router.exec("nft", &["list", "tables"])
}

/// Whether the turned-away stages are hooked in, as the kernel's ruleset says.
fn stages_hooked(net: &Topology) -> bool {
    let table = net
        .router
        .exec("nft", &["list", "table", "inet", "ctguard_creators"]);
    let hooked = ["prerouting_before", "prerouting_after"]
        .iter()
        .filter(|chain| table.contains(&format!("chain {chain} {{")))
        .count();
    assert!(hooked != 1, "both stages or neither: {table}");
    hooked == 2
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn each_new_flow_counts_once_for_its_source_destination_and_service() {
    if !have_root("each_new_flow_counts_once_for_its_source_destination_and_service") {
        return;
    }
    let net = Topology::new("crt");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    let before = net.router.conntrack_count();
    // 600 flows from the attacker (one per source port, the seed's pattern) and 150 from the
    // client's address, all to the guest's port 9999.
    net.flood(ATTACKER, 600, 20000, false);
    net.flood(CLIENT, 150, 40000, false);
    let created = net.router.conntrack_count() - before;
    let answer = creators_when(&mut session, "both floods in the counts", |c| {
        created_by(c, CreatorKey::Source, ATTACKER) >= 600
            && created_by(c, CreatorKey::Source, CLIENT) >= 150
    });
    assert_eq!(
        created, 750,
        "the kernel's own count of what the floods created"
    );
    assert_eq!(
        created_by(&answer, CreatorKey::Source, ATTACKER),
        600,
        "exact: no event lost"
    );
    assert_eq!(created_by(&answer, CreatorKey::Source, CLIENT), 150);
    assert_eq!(created_by(&answer, CreatorKey::Destination, GUEST), 750);
    let window = answer.window(60).unwrap();
    let sources = window.list(CreatorKey::Source).unwrap();
    assert_eq!(
        sources.top[0].address.to_string(),
        ATTACKER,
        "the biggest creator first"
    );
    let listed: u64 = sources.top.iter().map(|c| c.new_flows).sum();
    assert_eq!(
        listed + sources.rest + sources.uncounted,
        window.new_flows,
        "every new flow is in the list, its rest or its overflow"
    );
    assert_eq!(
        window.new_flows, created,
        "the table's total is conntrack's count"
    );
    // One source port per flow: the attacker's service key is (guest port 9999) for each.
    let services = window.list(CreatorKey::SourceDestinationPort).unwrap();
    let attacker_to_9999 = services
        .top
        .iter()
        .find(|c| c.address.to_string() == ATTACKER)
        .unwrap();
    assert_eq!(
        (
            attacker_to_9999.protocol,
            attacker_to_9999.port,
            attacker_to_9999.new_flows
        ),
        (Some(Protocol::Udp), Some(9999), 600)
    );
    assert_eq!(answer.windows.len(), WINDOWS_SECS.len());
    assert!(
        window.covered_secs >= 1 && window.covered_secs <= 60,
        "{}",
        window.covered_secs
    );
}

#[test]
fn flows_that_expired_before_any_walk_are_still_named_by_their_creator() {
    if !have_root("flows_that_expired_before_any_walk_are_still_named_by_their_creator") {
        return;
    }
    let net = Topology::new("crtexp");
    // Unreplied UDP entries live 1 s on this router instead of 30.
    net.router.exec(
        "sysctl",
        &["-qw", "net.netfilter.nf_conntrack_udp_timeout=1"],
    );
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    net.flood(ATTACKER, 400, 20000, false);
    wait_for(
        "the flood's entries to expire",
        Duration::from_secs(20),
        || net.entries_from(ATTACKER, None) == 0,
    );
    let snapshot = session.ask(&Request::Snapshot {});
    let Response::Snapshot { snapshot } = snapshot else {
        panic!("{snapshot:?}");
    };
    assert!(
        snapshot
            .sources
            .top
            .iter()
            .all(|g| g.key.to_string() != ATTACKER),
        "a walk now sees none of the attacker's entries"
    );
    let answer = creators_when(&mut session, "the expired flood in the counts", |c| {
        created_by(c, CreatorKey::Source, ATTACKER) >= 400
    });
    assert_eq!(created_by(&answer, CreatorKey::Source, ATTACKER), 400);
}

#[test]
fn a_full_set_counts_the_rest_as_uncounted_and_holds_no_more_than_its_size() {
    if !have_root("a_full_set_counts_the_rest_as_uncounted_and_holds_no_more_than_its_size") {
        return;
    }
    let net = Topology::new("crtfull");
    let helper = helper_for(&net, &["--creator-set-size", "64"]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    // 300 flows from 300 distinct sources of 203.0.113.0/24-and-beyond: random sources.
    let status = Command::new("ip")
        .args(["netns", "exec", &net.inet.name, "timeout", "20", "hping3"])
        .args([
            "--udp",
            "-q",
            "-I",
            "eth0",
            "--rand-source",
            "-c",
            "300",
            "-i",
            "u200",
        ])
        .args(["-p", "9999", GUEST])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    let answer = creators_when(&mut session, "the random sources in the counts", |c| {
        let window = c.window(60).unwrap();
        let sources = window.list(CreatorKey::Source).unwrap();
        window.new_flows >= 300 && sources.uncounted > 0
    });
    let window = answer.window(60).unwrap();
    let sources = window.list(CreatorKey::Source).unwrap();
    let listed: u64 = sources.top.iter().map(|c| c.new_flows).sum();
    assert_eq!(listed + sources.rest + sources.uncounted, window.new_flows);
    let held = net.router.exec(
        "nft",
        &["-j", "list", "set", "inet", "ctguard_creators", "v4_source"],
    );
    let elements = held.matches("\"elem\": {").count() + held.matches("\"elem\":{").count();
    assert_eq!(elements, 64, "the set is full at its size and no bigger");
    assert_eq!(
        listed + sources.rest,
        64,
        "one flow per random source was counted"
    );
    assert_eq!(answer.set_capacity, 64);
}

#[test]
fn the_table_goes_with_a_clean_stop_and_comes_back_after_a_flush() {
    if !have_root("the_table_goes_with_a_clean_stop_and_comes_back_after_a_flush") {
        return;
    }
    let net = Topology::new("crtlife");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    assert!(router_tables(&net).contains("table inet ctguard_creators"));
    net.router.exec("nft", &["flush ruleset"]);
    net.load_router_ruleset();
    wait_for(
        "the counting table to come back",
        Duration::from_secs(20),
        || router_tables(&net).contains("table inet ctguard_creators"),
    );
    let status = Command::new("kill")
        .args(["-TERM", &helper.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(
        "the helper to remove its counting table",
        Duration::from_secs(20),
        || !router_tables(&net).contains("ctguard_creators"),
    );
}

#[test]
fn counting_off_leaves_no_table_and_says_so_and_big_asks_are_refused() {
    if !have_root("counting_off_leaves_no_table_and_says_so_and_big_asks_are_refused") {
        return;
    }
    let net = Topology::new("crtoff");
    // A table an earlier run left behind goes too.
    net.router.exec("nft", &["add table inet ctguard_creators"]);
    let helper = helper_for(&net, &["--count-creators", "off"]);
    let mut session = helper.session();
    wait_for("the old table to go", Duration::from_secs(10), || {
        !router_tables(&net).contains("ctguard_creators")
    });
    let answer = creators(&mut session, 10);
    assert!(!answer.counting);
    assert!(answer.windows.is_empty());
    assert!(answer.problem.unwrap().contains("--count-creators off"));
    let refused = session.ask(&Request::Creators { limit: 51 });
    assert!(
        matches!(
            refused,
            Response::Error {
                error: HelperError::TooManyCreators { given: 51, max: 50 }
            }
        ),
        "{refused:?}"
    );
}

#[test]
fn ipv4_only_counting_turns_no_ipv6_tracking_on() {
    if !have_root("ipv4_only_counting_turns_no_ipv6_tracking_on") {
        return;
    }
    let net = Topology::new("crtv4");
    let helper = helper_for(&net, &["--count-creators", "ipv4"]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    let tables = router_tables(&net);
    assert!(tables.contains("table ip ctguard_creators"), "{tables}");
    assert!(!tables.contains("table inet ctguard_creators"), "{tables}");
    net.flood(ATTACKER, 50, 20000, false);
    creators_when(&mut session, "the flood in the counts", |c| {
        created_by(c, CreatorKey::Source, ATTACKER) == 50
    });
}

/// Puts the global nf_conntrack_max back however the test ends.
struct GlobalLimit(String);

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

impl GlobalLimit {
    fn set(limit: u32) -> Self {
        let saved = std::fs::read_to_string(MAX_PATH).unwrap().trim().to_owned();
        std::fs::write(MAX_PATH, limit.to_string()).unwrap();
        Self(saved)
    }
}

impl Drop for GlobalLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_PATH, &self.0);
    }
}

/// connflood.py of the end-to-end sandbox: completed handshakes, held (the kernel never evicts
/// assured entries, so a table full of them drops new flows).
fn connflood(netns: &str, args: &[&str]) -> std::process::Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../end2end/sandbox/connflood.py"
    );
    Command::new("ip")
        .args(["netns", "exec", netns, "python3", script])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_full_table_names_whom_it_turns_away_as_the_kernels_drop_counter_counts() {
    if !have_root("a_full_table_names_whom_it_turns_away_as_the_kernels_drop_counter_counts") {
        return;
    }
    // The global nf_conntrack_max, which every namespace's table obeys, is lowered: this test runs
    // alone among the binary's, the others beside each other (their namespaces share the host).
    let _alone = support::host_alone();
    // nf_conntrack_max is global: take turns with the end-to-end sandbox and the benchmarks.
    let lock = std::fs::File::create("/run/ctguard-sandbox.lock").unwrap();
    let _turn = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let net = Topology::new("crtaway");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    let started = creators_when(&mut session, "counting to start", |c| c.counting);
    // Far from full: who is turned away is not counted, and nothing is hooked in for it.
    assert_eq!(
        (started.watching_since, started.watch_from_percent),
        (None, 90)
    );
    assert!(!stages_hooked(&net), "no per-packet stages below 90 %");
    let _limit = GlobalLimit::set(1024);
    let mut server = connflood(
        &net.guest.name,
        &[
            "serve",
            "--bind",
            GUEST,
            "--port",
            "8081",
            "--max",
            "2048",
            "--seconds",
            "90",
        ],
    );
    wait_for("the holder's listener", Duration::from_secs(10), || {
        net.guest
            .exec("ss", &["-Hltn", "sport = :8081"])
            .contains("8081")
    });
    let mut holder = connflood(
        &net.inet.name,
        &[
            "flood",
            "--source",
            CLIENT,
            "--to",
            GUEST,
            "--port",
            "8081",
            "--max",
            "1100",
            "--rate",
            "0",
            "--seconds",
            "60",
        ],
    );
    wait_for("the table to be full", Duration::from_secs(60), || {
        net.router.conntrack_count() >= 1024
    });
    // Full: the stages go in within a tick of the watch (1 s), in the kernel and in the answer.
    let watching = creators_when(&mut session, "the watch to start", |c| {
        c.watching_since.is_some()
    });
    assert!(stages_hooked(&net), "hooked in at 100 % fill");
    let since = watching.watching_since.unwrap();
    // The 10 s window used below must start after the watch did: refusals before it are in the
    // kernel's count only.
    wait_for("ten watched seconds", Duration::from_secs(20), || {
        unix_now() > since + 11
    });
    let drops_before = net.router.conntrack_stat_sum("drop");
    net.flood(ATTACKER, 300, 20000, false);
    let drops_after = net.router.conntrack_stat_sum("drop");
    assert!(
        drops_after - drops_before >= 300,
        "the kernel dropped the flood: {drops_before} -> {drops_after}"
    );
    assert_eq!(
        net.entries_from(ATTACKER, None),
        0,
        "none of it got an entry"
    );
    let answer = creators_when(&mut session, "the attacker among the turned away", |c| {
        let away = &c.window(10).unwrap().turned_away;
        away.top
            .iter()
            .any(|s| s.address.to_string() == ATTACKER && s.packets >= 300)
    });
    let window = answer.window(10).unwrap();
    assert!(
        answer.sampled_at - u64::from(window.covered_secs) >= since,
        "the window is all watched: {since} {answer:?}"
    );
    let away = &window.turned_away;
    let attacker = away
        .top
        .iter()
        .find(|s| s.address.to_string() == ATTACKER)
        .unwrap();
    assert_eq!(attacker.packets, 300, "each of its packets, once");
    // The holder's own retries against the full table were refused too: counted, and all of
    // it adds up to the kernel's statistic over the same window (read a moment apart).
    let counted = away.counted();
    assert!(
        counted.abs_diff(away.kernel_drops) <= counted / 100 + 2,
        "counted {counted}, the kernel's drop statistic {}",
        away.kernel_drops
    );
    assert_eq!(
        created_by(&answer, CreatorKey::Source, ATTACKER),
        0,
        "a flow turned away created no entry"
    );
    let _ = holder.kill();
    let _ = server.kill();
    let _ = holder.wait();
    let _ = server.wait();
    // Emptied: the stages come out once the hold (30 s without pressure) has passed.
    net.router.exec("conntrack", &["-F"]);
    wait_for("the stages to come out", Duration::from_secs(60), || {
        !stages_hooked(&net)
    });
    assert_eq!(creators(&mut session, 10).watching_since, None);
}

#[test]
fn a_busy_source_whose_flows_all_get_in_is_not_turned_away() {
    if !have_root("a_busy_source_whose_flows_all_get_in_is_not_turned_away") {
        return;
    }
    let net = Topology::new("crtbusy");
    // Watching from the first packet: the busy source is seen and must still not be named.
    let helper = helper_for(&net, &["--watch-turned-away-from", "0"]);
    let mut session = helper.session();
    creators_when(&mut session, "counting to start", |c| c.counting);
    // A reverse proxy's worth of new flows, with room in the table for all of them.
    net.flood(CLIENT, 2000, 20000, false);
    let answer = creators_when(&mut session, "the flows in the counts", |c| {
        created_by(c, CreatorKey::Source, CLIENT) >= 2000
    });
    assert!(answer.watching_since.is_some());
    assert!(stages_hooked(&net));
    let away = &answer.window(60).unwrap().turned_away;
    assert!(away.top.is_empty(), "{away:?}");
    assert_eq!((away.counted(), away.kernel_drops), (0, 0));
}
