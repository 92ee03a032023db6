//! Why a source looks suspicious, in words: the thresholds (all in this one place) and the
//! assessment of a snapshot's top sources against them.

use std::net::IpAddr;

use ctguard_protocol::snapshot::{Snapshot, StateMix};
use serde::{Deserialize, Serialize};

/// A source holding at least this share of the table is worth a look by itself.
pub const LARGE_SHARE_PERCENT: f64 = 10.0;
/// Entries that never saw a reply: above this share a source is flooding or scanning.
pub const UNREPLIED_PERCENT: f64 = 90.0;
/// Half-open TCP (SYN_SENT or SYN_RECV) above this share: a SYN flood or a port scan.
pub const HALF_OPEN_PERCENT: f64 = 80.0;
/// One source to at least this many distinct destination ports (as far as the top pairs show):
/// a port scan, or reflected replies landing on random ports.
pub const MANY_PORTS: usize = 20;
/// Below this many entries a source is noise, whatever its mix.
pub const MIN_ENTRIES: u64 = 50;

/// One reason, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reason {
    LargeShare { percent: f64 },
    Unreplied { percent: f64 },
    HalfOpen { percent: f64 },
    ManyPorts { ports: usize },
}

impl Reason {
    pub fn describe(&self) -> String {
        match self {
            Self::LargeShare { percent } => format!("{percent:.0}% of the table"),
            Self::Unreplied { percent } => {
                format!("{percent:.0}% unreplied: likely a flood or scan")
            }
            Self::HalfOpen { percent } => {
                format!("{percent:.0}% half-open TCP: SYN flood or port scan")
            }
            Self::ManyPorts { ports } => format!(
                "to {ports}+ destination ports: a scan, or reflection (e.g. DNS replies from port 53)"
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

    /// One line for a block's reason field.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(Reason::describe)
            .collect::<Vec<_>>()
            .join("; ")
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
            let mut reasons = Vec::new();
            if mix.entries >= MIN_ENTRIES {
                if share_percent >= LARGE_SHARE_PERCENT {
                    reasons.push(Reason::LargeShare {
                        percent: share_percent,
                    });
                }
                let unreplied = percent(mix.unreplied, mix.entries);
                if unreplied >= UNREPLIED_PERCENT {
                    reasons.push(Reason::Unreplied { percent: unreplied });
                }
                let half_open = percent(mix.syn_sent + mix.syn_recv, mix.entries);
                if half_open >= HALF_OPEN_PERCENT {
                    reasons.push(Reason::HalfOpen { percent: half_open });
                }
                let ports = snapshot
                    .source_dports
                    .top
                    .iter()
                    .filter(|pair| pair.key.source == group.key)
                    .count();
                if ports >= MANY_PORTS {
                    reasons.push(Reason::ManyPorts { ports });
                }
            }
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

#[cfg(test)]
mod tests {
    use ctguard_protocol::snapshot::{Group, SourcePort, TopList};

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
