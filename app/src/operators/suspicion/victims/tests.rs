//! The victim reasons, each with the benign case that must not raise it.

use std::net::{IpAddr, Ipv4Addr};

use ctguard_protocol::{
    Protocol, ShortText, Side,
    snapshot::{DestinationService, Snapshot, SourcedGroup, SourcedList, StateMix, TopList},
};

use super::*;

const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

fn empty<K>() -> TopList<K> {
    TopList {
        top: vec![],
        rest: StateMix::default(),
        distinct: 0,
    }
}

fn sourced<K>(top: Vec<SourcedGroup<K>>) -> SourcedList<K> {
    SourcedList {
        distinct: top.len() as u64,
        top,
        rest: StateMix::default(),
    }
}

/// A table of `total` entries in which `VICTIM` receives `services`; the destination's own group
/// is the sum of its services (plus `other` entries from `other_sources`).
fn table(total: u64, services: Vec<(Protocol, Side, u16, StateMix, u32)>) -> Snapshot {
    let mut destination = StateMix::default();
    let mut sources = 0;
    for (_, _, _, mix, from) in &services {
        add_mix(&mut destination, mix);
        sources += from;
    }
    Snapshot {
        taken_unix_ms: 0,
        walk_ms: 1,
        total: StateMix {
            entries: total,
            ..StateMix::default()
        },
        sources: empty(),
        destinations: empty(),
        dports: empty(),
        source_dports: empty(),
        source_sports: empty(),
        source_spread: vec![],
        protocols: empty(),
        tcp_states: empty(),
        destination_sources: sourced(vec![SourcedGroup {
            key: VICTIM,
            mix: destination,
            sources,
        }]),
        destination_services: sourced(
            services
                .into_iter()
                .map(|(protocol, side, port, mix, sources)| SourcedGroup {
                    key: DestinationService {
                        destination: VICTIM,
                        protocol,
                        side,
                        port,
                    },
                    mix,
                    sources,
                })
                .collect(),
        ),
    }
}

fn add_mix(into: &mut StateMix, mix: &StateMix) {
    into.entries += mix.entries;
    into.unreplied += mix.unreplied;
    into.assured += mix.assured;
    into.syn_sent += mix.syn_sent;
    into.syn_recv += mix.syn_recv;
    into.established += mix.established;
}

fn unreplied(entries: u64) -> StateMix {
    StateMix {
        entries,
        unreplied: entries,
        ..StateMix::default()
    }
}

fn syn_recv(entries: u64) -> StateMix {
    StateMix {
        entries,
        syn_recv: entries,
        ..StateMix::default()
    }
}

fn established(entries: u64) -> StateMix {
    StateMix {
        entries,
        assured: entries,
        established: entries,
        ..StateMix::default()
    }
}

fn only(victims: Vec<Victim>) -> Victim {
    assert_eq!(victims.len(), 1, "{victims:?}");
    victims.into_iter().next().expect("one")
}

#[test]
fn udp_from_port_53_from_thousands_of_sources_is_dns_reflection_against_the_destination() {
    let victim = only(assess_victims(&table(
        12_000,
        vec![(Protocol::Udp, Side::Source, 53, unreplied(9_300), 3_100)],
    )));
    assert_eq!(
        victim.reasons,
        vec![VictimReason::Reflection {
            sport: 53,
            service: "DNS".into(),
            sources: 3_100,
            entries: 9_300,
        }]
    );
    assert!(victim.is_attacked());
    assert_eq!(
        victim.summary(),
        "203.0.113.10 receives UDP from source port 53 from about 3,100 sources (9,300 entries, \
         mostly unanswered): DNS reflection against it"
    );
    let block = victim.block_suggestion().expect("a block is suggested");
    assert_eq!(block.scope.target_text(), "udp to 203.0.113.10 sport 53");
    assert!(block.reason.contains("DNS reflection against it"));
    let note = block.note.expect("a note");
    assert!(
        note.contains("the answers to its own DNS queries over UDP too"),
        "{note}"
    );
}

#[test]
fn answered_udp_from_port_53_is_no_reflection() {
    // Whatever sends from port 53 to this destination and gets answers is talking to it.
    let answered = StateMix {
        unreplied: 100,
        assured: 2_900,
        ..unreplied(3_000)
    };
    let victim = only(assess_victims(&table(
        20_000,
        vec![(Protocol::Udp, Side::Source, 53, answered, 500)],
    )));
    assert!(!victim.is_attacked(), "{:?}", victim.reasons);
    assert_eq!(victim.block_suggestion(), None);
}

#[test]
fn a_few_reflectors_are_the_per_source_reasons_business() {
    let victim = only(assess_victims(&table(
        12_000,
        vec![(Protocol::Udp, Side::Source, 53, unreplied(9_000), 3)],
    )));
    assert!(victim.reasons.is_empty(), "{:?}", victim.reasons);
}

#[test]
fn half_open_tcp_to_one_port_from_twenty_thousand_sources_is_a_spoofed_syn_flood() {
    let victim = only(assess_victims(&table(
        50_000,
        vec![(
            Protocol::Tcp,
            Side::Destination,
            80,
            syn_recv(20_000),
            20_000,
        )],
    )));
    assert_eq!(
        victim.summary(),
        "40 % of the table is half-open TCP to 203.0.113.10 port 80 from about 20,000 sources; \
         it answers, the handshakes are never completed: a spoofed SYN flood"
    );
    let block = victim.block_suggestion().expect("a block is suggested");
    assert_eq!(block.scope.target_text(), "tcp to 203.0.113.10 dport 80");
    let note = block.note.expect("a note");
    assert!(note.contains("its legitimate clients' too"), "{note}");
    assert!(
        note.contains("SYN cookies (net.ipv4.tcp_syncookies"),
        "{note}"
    );
    assert!(note.contains("not this table"), "{note}");
    assert!(note.contains("synproxy"), "{note}");
    assert!(
        ShortText::new(block.reason).is_ok(),
        "the prefilled reason fits"
    );
}

#[test]
fn unanswered_syns_may_also_be_a_service_that_is_down() {
    let syn_sent = StateMix {
        syn_sent: 6_000,
        ..unreplied(6_000)
    };
    let victim = only(assess_victims(&table(
        10_000,
        vec![(Protocol::Tcp, Side::Destination, 443, syn_sent, 5_000)],
    )));
    assert!(victim.is_attacked());
    assert!(
        victim.summary().ends_with(
            "mostly unanswered: a SYN flood, or a service that is down while its clients retry"
        ),
        "{}",
        victim.summary()
    );
}

#[test]
fn a_few_clients_retrying_a_down_service_are_not_a_flood() {
    // 150 clients' retries, 2 % of the table: half-open from many sources, but no crowd.
    let victim = only(assess_victims(&table(
        20_000,
        vec![(Protocol::Tcp, Side::Destination, 443, syn_recv(400), 150)],
    )));
    assert!(!victim.is_attacked(), "{:?}", victim.reasons);
}

#[test]
fn many_users_on_one_busy_service_are_normal() {
    // A NAT gateway's users, or a popular web server: thousands of sources, all answered.
    let victim = only(assess_victims(&table(
        50_000,
        vec![(
            Protocol::Tcp,
            Side::Destination,
            443,
            established(30_000),
            20_000,
        )],
    )));
    assert!(!victim.is_attacked());
    assert_eq!(victim.block_suggestion(), None, "no block is suggested");
    assert!(
        victim.summary().contains(
            "60 % of the table is tcp to 203.0.113.10 port 443 from about 20,000 sources, mostly \
             answered: a busy service"
        ),
        "{}",
        victim.summary()
    );
}

#[test]
fn a_reverse_proxy_holding_hundreds_of_connections_to_its_backend_is_nothing_here() {
    // One source with 400 held connections: the per-source reasons judge it (held open).
    let victim = only(assess_victims(&table(
        1_000,
        vec![(Protocol::Tcp, Side::Destination, 8082, established(400), 1)],
    )));
    assert!(victim.reasons.is_empty(), "{:?}", victim.reasons);
}

#[test]
fn many_sources_flooding_random_ports_name_the_destination() {
    let mut snapshot = table(10_000, vec![]);
    snapshot.destination_sources.top[0].mix = unreplied(6_000);
    snapshot.destination_sources.top[0].sources = 5_000;
    let victim = only(assess_victims(&snapshot));
    assert_eq!(
        victim.reasons,
        vec![VictimReason::ManySources {
            sources: 5_000,
            table_percent: 60.0
        }]
    );
    let block = victim.block_suggestion().expect("a block");
    assert_eq!(block.scope.target_text(), "to 203.0.113.10");
    assert!(block.note.expect("note").contains("offline while it lasts"));
    // Answered, it is a busy destination.
    snapshot.destination_sources.top[0].mix = established(6_000);
    assert!(!only(assess_victims(&snapshot)).is_attacked());
}

#[test]
fn a_service_alarm_explains_the_destination_without_a_second_reason() {
    let mut snapshot = table(
        12_000,
        vec![(Protocol::Udp, Side::Source, 53, unreplied(9_300), 3_100)],
    );
    snapshot.destination_sources.top[0].sources = 3_100;
    let victim = only(assess_victims(&snapshot));
    assert_eq!(victim.reasons.len(), 1, "{:?}", victim.reasons);
}

#[test]
fn small_destinations_are_noise_and_attacked_ones_come_first() {
    let mut snapshot = table(
        12_000,
        vec![(Protocol::Udp, Side::Source, 53, unreplied(9_300), 3_100)],
    );
    let busy = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
    let tiny = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
    snapshot.destination_sources.top.insert(
        0,
        SourcedGroup {
            key: busy,
            mix: established(10_000),
            sources: 3,
        },
    );
    snapshot.destination_sources.top.push(SourcedGroup {
        key: tiny,
        mix: unreplied(MIN_ENTRIES - 1),
        sources: 49,
    });
    let victims = assess_victims(&snapshot);
    assert_eq!(
        victims.iter().map(|v| v.address).collect::<Vec<_>>(),
        vec![VICTIM, busy]
    );
}
