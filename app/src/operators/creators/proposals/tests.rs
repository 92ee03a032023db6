//! The creators' patterns, each with the benign case that must not raise it.

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use ctguard_protocol::{
    BlockTarget, CreatorList, ShortText,
    creators::{TurnedAway, TurnedAwaySource},
    snapshot::StateMix,
};

use super::*;
use crate::operators::suspicion::Victim;

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));
const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

/// The `n`th of many other addresses.
fn other(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n))
}

fn count(address: IpAddr, service: Option<(Protocol, u16)>, new_flows: u64) -> CreatorCount {
    CreatorCount {
        address,
        protocol: service.map(|(protocol, _)| protocol),
        port: service.map(|(_, port)| port),
        new_flows,
    }
}

fn list(key: CreatorKey, top: Vec<CreatorCount>, uncounted: u64) -> CreatorList {
    CreatorList {
        key,
        top,
        rest: 0,
        uncounted,
    }
}

/// The last minute, fully covered, of `new_flows` with `lists`; conntrack refused `kernel_drops`.
fn window(new_flows: u64, lists: Vec<CreatorList>, kernel_drops: u64) -> CreatorWindow {
    CreatorWindow {
        seconds: 60,
        covered_secs: 60,
        new_flows,
        lists,
        turned_away: TurnedAway {
            top: Vec::new(),
            rest: 0,
            uncounted: 0,
            kernel_drops,
            unwatched_drops: 0,
        },
    }
}

/// A table `percent` full.
fn fill(percent: u64) -> Option<TableFill> {
    Some(TableFill {
        count: percent * 2_621,
        max: 262_100,
        drop: 0,
    })
}

fn sources(top: Vec<CreatorCount>) -> CreatorList {
    list(CreatorKey::Source, top, 0)
}

/// `n` sources creating `each` new flows apiece.
fn many_sources(n: u32, each: u64) -> CreatorList {
    sources((0..n).map(|i| count(other(i), None, each)).collect())
}

fn patterns(found: &Result<Vec<Proposal>, Quiet>) -> Vec<Pattern> {
    found
        .as_ref()
        .map(|found| found.iter().map(|p| p.pattern.clone()).collect())
        .unwrap_or_default()
}

fn only(found: Result<Vec<Proposal>, Quiet>) -> Proposal {
    let mut found = found.expect("under pressure, over a long window");
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// A flooder making 90 % of 10,000 new entries a second, all of them to one destination.
fn one_flooder(kernel_drops: u64) -> CreatorWindow {
    window(
        600_000,
        vec![
            sources(vec![
                count(FLOODER, None, 540_000),
                count(other(1), None, 6_000),
            ]),
            list(
                CreatorKey::Destination,
                vec![count(VICTIM, None, 540_000)],
                0,
            ),
        ],
        kernel_drops,
    )
}

#[test]
fn one_source_creating_most_new_entries_at_a_full_table_is_blocked() {
    let proposal = only(propose(&one_flooder(1_200), None));
    assert_eq!(
        proposal.pattern,
        Pattern::Source {
            source: FLOODER,
            per_second: 9_000,
            percent: 90
        },
        "the destination it floods is no distributed flood: one source makes it"
    );
    assert_eq!(proposal.suggestion.scope.target_text(), "from 203.0.113.66");
    assert_eq!(proposal.suggestion.title, "Block 203.0.113.66");
    assert_eq!(
        proposal.words,
        "203.0.113.66 creates 9,000 entries/s, 90 % of all new entries over the last minute, \
         while the table was full (1,200 packets refused): one source filling the table"
    );
    let note = proposal.suggestion.note.expect("a note");
    assert!(
        note.contains("drops everything from 203.0.113.66"),
        "{note}"
    );
    assert!(
        note.contains("wrong if 203.0.113.66 is a NAT gateway"),
        "{note}"
    );
}

#[test]
fn a_busy_proxy_creating_most_entries_while_the_table_has_room_gets_no_proposal() {
    // A reverse proxy (or a resolver) opening 9,000 connections a second for a few clients.
    let busy = one_flooder(0);
    assert_eq!(propose(&busy, fill(30)), Err(Quiet::Calm));
    assert_eq!(propose(&busy, fill(89)), Err(Quiet::Calm));
    assert_eq!(propose(&busy, None), Err(Quiet::Calm), "no fill known");
    assert_eq!(
        propose(
            &busy,
            Some(TableFill {
                count: 0,
                max: 0,
                drop: 0
            })
        ),
        Err(Quiet::Calm),
        "no limit known"
    );
    assert!(Quiet::Calm.explain().contains("busy clients"));
    // The same at a near-full table is what fills it.
    let near_full = only(propose(&busy, fill(NEAR_FULL_PERCENT)));
    assert!(
        near_full.words.contains("while the table is 90 % full"),
        "{}",
        near_full.words
    );
    assert!(matches!(near_full.pattern, Pattern::Source { .. }));
    // Refused flows counted per source are pressure without the kernel's statistic.
    let mut refusing = busy.clone();
    refusing.turned_away.top = vec![TurnedAwaySource {
        address: FLOODER,
        packets: 50,
    }];
    assert_eq!(
        Pressure::of(&refusing, fill(30)),
        Some(Pressure::TurnedAway { packets: 50 })
    );
    // So are the kernel's drops while nobody was counted per source.
    let mut unwatched = busy;
    unwatched.turned_away.unwatched_drops = 7;
    assert_eq!(
        Pressure::of(&unwatched, fill(30)),
        Some(Pressure::TurnedAway { packets: 7 })
    );
}

#[test]
fn a_window_of_a_few_seconds_does_not_extrapolate_into_an_alarm() {
    let mut burst = one_flooder(1_200);
    burst.new_flows = 10_000;
    burst.lists[0].top[0].new_flows = 9_000;
    burst.lists[1].top[0].new_flows = 9_000;
    burst.covered_secs = 3;
    let quiet = propose(&burst, None);
    assert_eq!(quiet, Err(Quiet::ShortWindow { covered_secs: 3 }));
    assert!(
        quiet
            .expect_err("quiet")
            .explain()
            .contains("counted for 3 s")
    );
    burst.covered_secs = MIN_COVERED_SECS;
    assert_eq!(
        patterns(&propose(&burst, None)),
        vec![Pattern::Source {
            source: FLOODER,
            per_second: 900,
            percent: 90
        }]
    );
}

#[test]
fn a_source_below_the_rate_bar_is_no_flood_whatever_its_share() {
    // A full table of held-open entries; the only newcomer is one client reconnecting.
    let slow = |new_flows: u64| {
        window(
            new_flows,
            vec![sources(vec![count(FLOODER, None, new_flows)])],
            1_200,
        )
    };
    assert_eq!(propose(&slow(60 * (MIN_PER_SECOND - 1)), None), Ok(vec![]));
    assert_eq!(
        patterns(&propose(&slow(60 * MIN_PER_SECOND), None)),
        vec![Pattern::Source {
            source: FLOODER,
            per_second: MIN_PER_SECOND,
            percent: 100
        }]
    );
}

#[test]
fn what_the_sets_could_not_count_is_attributed_to_nobody() {
    // 8,000 new entries a second from sources the full set could not name, and to destinations
    // it could not name: no source dominates and no destination does.
    let overflowing = window(
        600_000,
        vec![
            list(
                CreatorKey::Source,
                (0..20).map(|i| count(other(i), None, 6_000)).collect(),
                480_000,
            ),
            list(
                CreatorKey::Destination,
                vec![count(VICTIM, None, 30_000)],
                500_000,
            ),
        ],
        1_200,
    );
    assert_eq!(propose(&overflowing, None), Ok(vec![]));
    // Nor is "everyone else".
    let mut rest = overflowing.clone();
    for list in &mut rest.lists {
        (list.rest, list.uncounted) = (list.uncounted, 0);
    }
    assert_eq!(propose(&rest, None), Ok(vec![]));
    // A counted victim among uncounted sources is proposed, saying the uncounted could hide one.
    let mut victim = overflowing;
    victim.lists[1].top[0].new_flows = 500_000;
    let flood = only(propose(&victim, None));
    assert!(matches!(
        flood.pattern,
        Pattern::Flood {
            victim: VICTIM,
            sources: 84,
            ..
        }
    ));
    let note = flood.suggestion.note.expect("a note");
    assert!(
        note.contains("could not name created 8,000 entries/s of all new entries"),
        "{note}"
    );
}

/// `VICTIM` receiving 500,000 of 600,000 new flows, `by_port` the (protocol, source port) sets'
/// elements for it, from sources of which the biggest made `biggest`.
fn attacked(by_port: Vec<(Option<(Protocol, u16)>, u64)>, biggest: u64) -> CreatorWindow {
    window(
        600_000,
        vec![
            many_sources(10, biggest),
            list(
                CreatorKey::Destination,
                vec![count(VICTIM, None, 500_000), count(FLOODER, None, 1_000)],
                0,
            ),
            list(
                CreatorKey::DestinationSourcePort,
                by_port
                    .into_iter()
                    .map(|(service, n)| count(VICTIM, service, n))
                    .collect(),
                0,
            ),
        ],
        1_200,
    )
}

#[test]
fn many_sources_sending_from_an_amplifiers_port_to_one_victim_is_reflection() {
    let reflected = attacked(vec![(Some((Protocol::Udp, 53)), 450_000)], 3_000);
    let proposal = only(propose(&reflected, None));
    assert_eq!(
        proposal.pattern,
        Pattern::Reflection {
            victim: VICTIM,
            sport: 53,
            service: "DNS",
            per_second: 7_500,
            percent: 75,
            sources: 150,
        }
    );
    // The same scope (and cost) as the walk's reflection reason.
    let walk = Victim {
        address: VICTIM,
        mix: StateMix::default(),
        sources: 150,
        share_percent: 75.0,
        reasons: vec![VictimReason::Reflection {
            sport: 53,
            service: "DNS".into(),
            sources: 150,
            entries: 450_000,
        }],
    }
    .block_suggestion()
    .expect("the walk's suggestion");
    assert_eq!(proposal.suggestion.scope, walk.scope);
    assert_eq!(
        proposal.suggestion.scope.target_text(),
        "udp to 203.0.113.10 sport 53"
    );
    assert_eq!(proposal.suggestion.title, walk.title);
    let note = proposal.suggestion.note.expect("a note");
    assert!(
        note.starts_with(&walk.note.expect("the walk's note")),
        "{note}"
    );
    assert!(
        note.contains("wrong if 203.0.113.10 serves DNS to peers that send from port 53"),
        "{note}"
    );
    assert!(
        proposal.words.contains(
            "receives new UDP flows from source port 53 at 7,500 entries/s (75 % of all new \
             entries) from at least 150 sources"
        ),
        "{}",
        proposal.words
    );
    // TCP from port 53, or UDP from a port no amplifier uses, is no reflection.
    for service in [(Protocol::Tcp, 53), (Protocol::Udp, 40_000)] {
        let pattern = only(propose(
            &attacked(vec![(Some(service), 450_000)], 3_000),
            None,
        ))
        .pattern;
        assert!(
            matches!(pattern, Pattern::Flood { service: Some(s), .. } if s == service),
            "{pattern:?}"
        );
    }
}

#[test]
fn a_few_heavy_senders_are_not_a_distributed_attack() {
    // A busy service behind a near-full table: five clients (or reflectors) at a fifth each.
    // The holders name them one by one; the creators propose no victim-wide block.
    for service in [Some((Protocol::Udp, 53)), None] {
        let few = attacked(vec![(service, 450_000)], 100_000);
        assert_eq!(propose(&few, fill(95)), Ok(vec![]), "{service:?}");
    }
    // Just distributed enough: ten times the biggest source.
    let ten = attacked(vec![(Some((Protocol::Udp, 123)), 450_000)], 50_000);
    assert!(matches!(
        patterns(&propose(&ten, None))[..],
        [Pattern::Reflection {
            service: "NTP",
            sources: 9,
            ..
        }]
    ));
}

#[test]
fn a_distributed_flood_is_scoped_to_the_victim_and_says_what_it_takes_offline() {
    // Spread over random source ports, each (victim, port) a handful of new entries.
    let flood = attacked(
        vec![
            (Some((Protocol::Tcp, 40_000)), 2_000),
            (Some((Protocol::Tcp, 40_001)), 1_900),
        ],
        100,
    );
    let proposal = only(propose(&flood, None));
    assert_eq!(
        proposal.pattern,
        Pattern::Flood {
            victim: VICTIM,
            per_second: 8_333,
            percent: 83,
            sources: 5_000,
            service: None,
        }
    );
    assert_eq!(proposal.suggestion.scope.target_text(), "to 203.0.113.10");
    assert!(
        proposal
            .words
            .contains("from at least 5,000 sources, no one source port makes half of them"),
        "{}",
        proposal.words
    );
    let note = proposal.suggestion.note.clone().expect("a note");
    assert!(note.contains("takes 203.0.113.10 offline"), "{note}");
    assert!(note.contains("wrong if the traffic is wanted"), "{note}");
    assert!(
        !note.contains("narrow the block to `"),
        "no common service: {note}"
    );

    // The sources' (protocol, destination port) all name tcp port 80: a hint, not the scope.
    let mut hinted = flood.clone();
    hinted.lists.push(list(
        CreatorKey::SourceDestinationPort,
        vec![
            count(other(1), Some((Protocol::Tcp, 80)), 100),
            count(other(2), Some((Protocol::Tcp, 80)), 90),
        ],
        0,
    ));
    let proposal = only(propose(&hinted, None));
    assert_eq!(proposal.suggestion.scope.target_text(), "to 203.0.113.10");
    let note = proposal.suggestion.note.expect("a note");
    assert!(
        note.contains("narrow the block to `tcp to 203.0.113.10 dport 80`"),
        "{note}"
    );
    // One source listed with another service: no hint.
    hinted.lists[3].top[1].port = Some(443);
    let note = only(propose(&hinted, None))
        .suggestion
        .note
        .expect("a note");
    assert!(!note.contains("narrow the block to `"), "{note}");

    // One source port making most of it narrows the block to it, saying what that costs.
    let one_port = attacked(vec![(Some((Protocol::Udp, 3_702)), 300_000)], 100);
    let proposal = only(propose(&one_port, None));
    assert_eq!(
        proposal.suggestion.scope.target_text(),
        "udp to 203.0.113.10 sport 3702"
    );
    let note = proposal.suggestion.note.expect("a note");
    assert!(
        note.contains("answers to 203.0.113.10's own connections to servers on port 3702"),
        "{note}"
    );
    // Port 0 cannot be matched: the block stays on the victim.
    let zero = attacked(vec![(Some((Protocol::Udp, 0)), 450_000)], 100);
    assert_eq!(
        only(propose(&zero, None)).suggestion.scope.target_text(),
        "to 203.0.113.10"
    );
}

#[test]
fn a_victim_only_the_source_port_set_counted_is_still_seen() {
    // The destination set was full; the (destination, protocol, source port) set counted it.
    let mut reflected = attacked(vec![(Some((Protocol::Udp, 53)), 450_000)], 3_000);
    reflected.lists[1] = list(CreatorKey::Destination, vec![], 500_000);
    assert!(matches!(
        patterns(&propose(&reflected, None))[..],
        [Pattern::Reflection {
            victim: VICTIM,
            sources: 150,
            ..
        }]
    ));
}

#[test]
fn every_proposal_is_a_target_the_helper_parses_with_a_reason_that_fits() {
    let windows = [
        one_flooder(1),
        attacked(vec![(Some((Protocol::Udp, 53)), 450_000)], 3_000),
        attacked(vec![(Some((Protocol::Tcp, 40_000)), 2_000)], 100),
        attacked(vec![(Some((Protocol::Tcp, 443)), 450_000)], 100),
    ];
    for shown in &windows {
        for proposal in propose(shown, None).expect("proposals") {
            let text = proposal.suggestion.scope.target_text();
            assert!(BlockTarget::from_str(&text).is_ok(), "{text}");
            assert_eq!(proposal.suggestion.scope.problem(), None);
            let reason = &proposal.suggestion.reason;
            assert!(ShortText::new(reason.clone()).is_ok(), "{reason}");
            assert!(proposal.words.starts_with(reason.trim_end_matches('…')));
        }
    }
}
