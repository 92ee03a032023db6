//! Why a source looks suspicious, in words: the thresholds (all in this one place) and the
//! assessment of a snapshot's top sources against them.

use std::net::IpAddr;

use ctguard_protocol::{
    Protocol, Side,
    snapshot::{Snapshot, SourceSpread, StateMix},
};
use serde::{Deserialize, Serialize};

use crate::block_scope::BlockScope;

/// A source holding at least this share of the table is worth a look by itself.
pub const LARGE_SHARE_PERCENT: f64 = 10.0;
/// Entries that never saw a reply: above this share a source is flooding or scanning.
pub const UNREPLIED_PERCENT: f64 = 90.0;
/// A large source whose entries are at least this share ASSURED holds connections open: the kernel
/// never evicts assured entries to make room, so a table full of them drops new connections.
pub const HELD_OPEN_PERCENT: f64 = 90.0;
/// Half-open TCP (SYN_SENT or SYN_RECV) above this share: a SYN flood or a port scan.
pub const HALF_OPEN_PERCENT: f64 = 80.0;
/// One source to at least this many distinct destination ports: a port scan, or reflected
/// replies landing on random ports.
pub const MANY_PORTS: usize = 20;
/// A source-NATed (internal) source to at least this many distinct destinations: a guest
/// scanning or spraying the internet, likely compromised.
pub const MANY_DESTINATIONS: u32 = 100;
/// At least this share of a source's entries NATed by the host: it is a guest behind it.
pub const INTERNAL_PERCENT: f64 = 90.0;
/// At least this share of a source's entries from one UDP amplifier port: reflection.
pub const REFLECTION_PERCENT: f64 = 50.0;
/// UDP services abused for reflection, by source port (the helper counts only these).
pub use ctguard_protocol::snapshot::AMPLIFIERS;
/// Below this many entries a source is noise, whatever its mix.
pub const MIN_ENTRIES: u64 = 50;

/// One reason, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reason {
    LargeShare {
        percent: f64,
    },
    Unreplied {
        percent: f64,
    },
    /// Most of a large source's entries are assured (completed handshakes, or UDP seen both ways).
    HeldOpen {
        percent: f64,
    },
    HalfOpen {
        percent: f64,
    },
    ManyPorts {
        ports: usize,
    },
    /// UDP from an amplifier's source port to many ports.
    Reflection {
        sport: u16,
        service: String,
        percent: f64,
    },
    /// A guest behind the host's NAT opening connections to many destinations.
    InternalSpray {
        destinations: u32,
    },
}

impl Reason {
    pub fn describe(&self) -> String {
        match self {
            Self::LargeShare { percent } => format!("{percent:.0}% of the table"),
            Self::Unreplied { percent } => {
                format!("{percent:.0}% unreplied: likely a flood or scan")
            }
            Self::HeldOpen { percent } => format!(
                "{percent:.0}% assured: connections held open, which the kernel cannot evict \
                 to make room (a connection flood)"
            ),
            Self::HalfOpen { percent } => {
                format!("{percent:.0}% half-open TCP: SYN flood or port scan")
            }
            Self::ManyPorts { ports } => format!(
                "to {}{ports} destination ports: a scan, or reflected replies",
                approximately(*ports)
            ),
            Self::Reflection {
                sport,
                service,
                percent,
            } => format!(
                "{percent:.0}% UDP from source port {sport} to many ports: {service} reflection"
            ),
            Self::InternalSpray { destinations } => format!(
                "an internal address (behind this host's NAT) opening connections to {}{destinations} destinations: compromised guest?",
                approximately(*destinations as usize)
            ),
        }
    }
}

/// A top source and what makes it suspicious (possibly nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub address: IpAddr,
    pub mix: StateMix,
    pub share_percent: f64,
    pub reasons: Vec<Reason>,
}

impl Suspect {
    pub fn is_suspicious(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// Where the block form starts for this source. Reflected answers come from real servers
    /// (open resolvers, NTP servers) that may also serve this host: block only their reflected
    /// traffic, UDP from the amplifier's port. Anything else: everything from the address.
    pub fn suggested_scope(&self) -> BlockScope {
        let mut scope = BlockScope::from_address(self.address.to_string());
        if let Some(Reason::Reflection { sport, .. }) = self
            .reasons
            .iter()
            .find(|reason| matches!(reason, Reason::Reflection { .. }))
        {
            scope.protocol = Some(Protocol::Udp);
            scope.port = Some((Side::Source, *sport));
        }
        scope
    }

    /// One line for a block's reason field.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(Reason::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Sketch estimates are approximate, and a saturated one is a lower bound.
fn approximately(count: usize) -> &'static str {
    if count >= SourceSpread::SATURATED as usize {
        "over "
    } else if count > 100 {
        "about "
    } else {
        ""
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The snapshot's top sources, each with its reasons, those with the most reasons (then the
/// largest) first.
pub fn assess(snapshot: &Snapshot) -> Vec<Suspect> {
    let total = snapshot.total.entries;
    let mut suspects: Vec<Suspect> = snapshot
        .sources
        .top
        .iter()
        .map(|group| {
            let mix = group.mix;
            let share_percent = percent(mix.entries, total);
            let reasons = if mix.entries >= MIN_ENTRIES {
                reasons_for(snapshot, group.key, &mix, share_percent)
            } else {
                Vec::new()
            };
            Suspect {
                address: group.key,
                mix,
                share_percent,
                reasons,
            }
        })
        .collect();
    suspects.sort_by(|a, b| {
        b.reasons
            .len()
            .cmp(&a.reasons.len())
            .then(b.mix.entries.cmp(&a.mix.entries))
    });
    suspects
}

/// Every reason one source (with enough entries to matter) looks suspicious.
fn reasons_for(
    snapshot: &Snapshot,
    source: IpAddr,
    mix: &StateMix,
    share_percent: f64,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if share_percent >= LARGE_SHARE_PERCENT {
        reasons.push(Reason::LargeShare {
            percent: share_percent,
        });
        let assured = percent(mix.assured, mix.entries);
        if assured >= HELD_OPEN_PERCENT {
            reasons.push(Reason::HeldOpen { percent: assured });
        }
    }
    let unreplied = percent(mix.unreplied, mix.entries);
    if unreplied >= UNREPLIED_PERCENT {
        reasons.push(Reason::Unreplied { percent: unreplied });
    }
    let half_open = percent(mix.syn_sent + mix.syn_recv, mix.entries);
    if half_open >= HALF_OPEN_PERCENT {
        reasons.push(Reason::HalfOpen { percent: half_open });
    }
    let spread = snapshot
        .source_spread
        .iter()
        .find(|spread| spread.source == source);
    // Without a sketch, the top pairs give a lower bound.
    let ports = spread.map_or_else(
        || {
            snapshot
                .source_dports
                .top
                .iter()
                .filter(|pair| pair.key.source == source)
                .count()
        },
        |spread| spread.dports as usize,
    );
    if ports >= MANY_PORTS {
        reasons.push(reflection(snapshot, source, mix).unwrap_or(Reason::ManyPorts { ports }));
    }
    let internal = percent(mix.source_nat, mix.entries) >= INTERNAL_PERCENT;
    if let Some(spread) = spread
        && internal
        && spread.destinations >= MANY_DESTINATIONS
    {
        reasons.push(Reason::InternalSpray {
            destinations: spread.destinations,
        });
    }
    reasons
}

/// UDP from one amplifier's source port, for most of the source's entries: reflected answers.
fn reflection(snapshot: &Snapshot, source: IpAddr, mix: &StateMix) -> Option<Reason> {
    snapshot.source_sports.top.iter().find_map(|pair| {
        let (_, service) = AMPLIFIERS
            .iter()
            .find(|(port, _)| *port == pair.key.sport)?;
        let share = percent(pair.mix.entries, mix.entries);
        (pair.key.source == source
            && pair.key.protocol == Protocol::Udp
            && share >= REFLECTION_PERCENT)
            .then(|| Reason::Reflection {
                sport: pair.key.sport,
                service: (*service).to_owned(),
                percent: share,
            })
    })
}

#[cfg(test)]
mod tests {
    use ctguard_protocol::snapshot::{Group, SourcePort, SourceSport, TopList};

    use super::*;

    fn mix(entries: u64, unreplied: u64, syn_sent: u64) -> StateMix {
        StateMix {
            entries,
            unreplied,
            syn_sent,
            ..StateMix::default()
        }
    }

    fn list<K>(top: Vec<Group<K>>) -> TopList<K> {
        TopList {
            distinct: top.len() as u64,
            top,
            rest: StateMix::default(),
        }
    }

    fn snapshot(sources: Vec<(IpAddr, StateMix)>, pairs: Vec<SourcePort>) -> Snapshot {
        let total = sources.iter().map(|(_, m)| m.entries).sum();
        Snapshot {
            taken_unix_ms: 0,
            walk_ms: 1,
            total: StateMix {
                entries: total,
                ..StateMix::default()
            },
            sources: list(
                sources
                    .into_iter()
                    .map(|(key, mix)| Group { key, mix })
                    .collect(),
            ),
            destinations: list(vec![]),
            dports: list(vec![]),
            source_dports: list(
                pairs
                    .into_iter()
                    .map(|key| Group {
                        key,
                        mix: mix(1, 1, 0),
                    })
                    .collect(),
            ),
            source_sports: list(vec![]),
            source_spread: vec![],
            protocols: list(vec![]),
            tcp_states: list(vec![]),
        }
    }

    const FLOODER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 66));
    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 10));

    #[test]
    fn a_source_with_most_of_the_table_unreplied_is_a_flood() {
        let suspects = assess(&snapshot(
            vec![(CLIENT, mix(620, 0, 0)), (FLOODER, mix(380, 370, 0))],
            vec![],
        ));
        assert_eq!(suspects[0].address, FLOODER, "suspicious first");
        assert_eq!(
            suspects[0].reasons,
            vec![
                Reason::LargeShare { percent: 38.0 },
                Reason::Unreplied {
                    percent: 370.0 * 100.0 / 380.0
                }
            ]
        );
        assert_eq!(
            suspects[0].summary(),
            "38% of the table; 97% unreplied: likely a flood or scan"
        );
        assert_eq!(
            suspects[1].reasons,
            vec![Reason::LargeShare { percent: 62.0 }]
        );
    }

    #[test]
    fn half_open_tcp_and_many_ports_are_named() {
        let pairs = (1..=25)
            .map(|dport| SourcePort {
                source: FLOODER,
                dport,
            })
            .collect();
        let suspects = assess(&snapshot(
            vec![(FLOODER, mix(100, 10, 90)), (CLIENT, mix(10_000, 0, 0))],
            pairs,
        ));
        let flooder = suspects
            .iter()
            .find(|s| s.address == FLOODER)
            .expect("listed");
        assert!(
            flooder
                .reasons
                .contains(&Reason::HalfOpen { percent: 90.0 })
        );
        assert!(flooder.reasons.contains(&Reason::ManyPorts { ports: 25 }));
    }

    #[test]
    fn a_large_source_of_assured_entries_holds_the_table_open() {
        let held = StateMix {
            assured: 3_900,
            established: 3_900,
            ..mix(3_900, 0, 0)
        };
        let suspects = assess(&snapshot(
            vec![(FLOODER, held), (CLIENT, mix(196, 196, 0))],
            vec![],
        ));
        let flooder = &suspects[0];
        assert_eq!(flooder.address, FLOODER);
        assert!(
            flooder
                .reasons
                .contains(&Reason::HeldOpen { percent: 100.0 }),
            "{:?}",
            flooder.reasons
        );
        assert!(flooder.summary().contains("held open"));
        assert_eq!(flooder.suggested_scope().target_text(), "from 203.0.113.66");

        // A small source of assured entries is just a busy client.
        let busy = StateMix {
            assured: 600,
            ..mix(600, 0, 0)
        };
        let suspects = assess(&snapshot(
            vec![(FLOODER, mix(9_400, 0, 0)), (CLIENT, busy)],
            vec![],
        ));
        let client = suspects
            .iter()
            .find(|s| s.address == CLIENT)
            .expect("listed");
        assert!(client.reasons.is_empty(), "{:?}", client.reasons);
    }

    #[test]
    fn udp_from_port_53_to_many_ports_is_dns_reflection() {
        let mut seen = snapshot(vec![(FLOODER, mix(5_000, 5_000, 0))], vec![]);
        seen.source_sports = list(vec![Group {
            key: SourceSport {
                source: FLOODER,
                protocol: Protocol::Udp,
                sport: 53,
            },
            mix: mix(4_900, 4_900, 0),
        }]);
        seen.source_spread = vec![SourceSpread {
            source: FLOODER,
            dports: 2_400,
            destinations: 1,
        }];
        let suspects = assess(&seen);
        let reasons = &suspects[0].reasons;
        assert!(
            reasons.contains(&Reason::Reflection {
                sport: 53,
                service: "DNS".into(),
                percent: 98.0
            }),
            "{reasons:?}"
        );
        assert!(
            suspects[0]
                .summary()
                .contains("98% UDP from source port 53 to many ports: DNS reflection")
        );
        // The block form starts with only the reflected traffic, as the seed blocked it.
        assert_eq!(
            suspects[0].suggested_scope().target_text(),
            "udp from 203.0.113.66 sport 53"
        );
        // The same spread from an ordinary port is a scan, not reflection.
        seen.source_sports.top[0].key.sport = 40_000;
        let reasons = assess(&seen).remove(0).reasons;
        assert!(reasons.contains(&Reason::ManyPorts { ports: 2_400 }));
        assert_eq!(
            Reason::ManyPorts { ports: 2_400 }.describe(),
            "to about 2400 destination ports: a scan, or reflected replies"
        );
    }

    #[test]
    fn a_guest_behind_nat_spraying_many_destinations_looks_compromised() {
        let guest_mix = StateMix {
            source_nat: 900,
            ..mix(900, 880, 0)
        };
        let mut seen = snapshot(
            vec![(CLIENT, guest_mix), (FLOODER, mix(900, 880, 0))],
            vec![],
        );
        seen.source_spread = vec![
            SourceSpread {
                source: CLIENT,
                dports: 3,
                destinations: 640,
            },
            SourceSpread {
                source: FLOODER,
                dports: 3,
                destinations: 640,
            },
        ];
        let suspects = assess(&seen);
        let guest = suspects
            .iter()
            .find(|s| s.address == CLIENT)
            .expect("listed");
        assert!(
            guest
                .reasons
                .contains(&Reason::InternalSpray { destinations: 640 })
        );
        assert!(guest.summary().contains("compromised guest?"));
        let outsider = suspects
            .iter()
            .find(|s| s.address == FLOODER)
            .expect("listed");
        assert!(
            !outsider
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::InternalSpray { .. })),
            "only NATed (internal) sources"
        );
    }

    #[test]
    fn small_sources_are_noise_whatever_their_mix() {
        let suspects = assess(&snapshot(
            vec![(FLOODER, mix(MIN_ENTRIES - 1, MIN_ENTRIES - 1, 0))],
            vec![],
        ));
        assert!(!suspects[0].is_suspicious());
    }

    #[test]
    fn an_empty_table_has_no_suspects() {
        assert!(assess(&snapshot(vec![], vec![])).is_empty());
    }
}
