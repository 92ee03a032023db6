//! Who is attacked, not who attacks: reasons per destination and per (destination, protocol,
//! port), from the walk's groups that count their distinct sources. They catch what the
//! per-source reasons cannot: thousands of sources with a few entries each converging on one
//! victim (a distributed reflection, a spoofed SYN flood), none of them large enough to list.
//! Each alarm's fix is scoped to the victim (`udp to X sport 53`, `tcp to X dport 80`), and its
//! note says what else that block drops.

use std::net::IpAddr;

use ctguard_protocol::{
    Protocol, Side,
    snapshot::{DestinationService, Snapshot, SourcedGroup, StateMix, amplifier},
};
use serde::{Deserialize, Serialize};

use super::{HALF_OPEN_PERCENT, LARGE_SHARE_PERCENT, MIN_ENTRIES, UNANSWERED_PERCENT, percent};
use crate::operators::block_scope::{BlockScope, BlockSuggestion};

/// At least this many distinct sources make a group distributed: below it, the per-source
/// reasons see the attackers themselves (each then holds a large part of the group).
pub const MANY_SOURCES: u32 = 100;
/// A spoofed SYN flood, and a destination flooded by many sources, are alarms from this share of
/// the table: half-open entries to one port from many sources are also what a service that is
/// down makes while its clients retry, which matters only once it crowds the table.
pub const VICTIM_SHARE_PERCENT: f64 = 5.0;

/// One reason a destination looks attacked (or, for [`VictimReason::BusyService`], is simply
/// busy), with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VictimReason {
    /// UDP from an amplifier's source port, from many sources, mostly unanswered: answers to
    /// queries the victim never sent, its address spoofed in them.
    Reflection {
        sport: u16,
        service: String,
        sources: u32,
        entries: u64,
    },
    /// TCP to one port, mostly half-open (SYN_SENT or SYN_RECV), from many sources.
    SynFlood {
        dport: u16,
        sources: u32,
        /// The group's half-open entries as a share of the whole table.
        table_percent: f64,
        /// Most half-open entries saw the victim's SYN-ACK (SYN_RECV): it answers, and the
        /// handshakes are never completed, as with spoofed sources.
        answered: bool,
    },
    /// Many sources, mostly unanswered, that no service reason explains.
    ManySources { sources: u32, table_percent: f64 },
    /// Many sources on one service, mostly answered: a busy service, information only.
    BusyService {
        protocol: Protocol,
        side: Side,
        port: u16,
        sources: u32,
        table_percent: f64,
    },
}

impl VictimReason {
    pub fn is_alarm(&self) -> bool {
        !matches!(self, Self::BusyService { .. })
    }

    pub fn describe(&self, victim: IpAddr) -> String {
        match self {
            Self::Reflection {
                sport,
                service,
                sources,
                entries,
            } => format!(
                "{victim} receives UDP from source port {sport} from {} sources ({} entries, \
                 mostly unanswered): {service} reflection against it",
                count(*sources),
                thousands(*entries),
            ),
            Self::SynFlood {
                dport,
                sources,
                table_percent,
                answered,
            } => {
                let how = if *answered {
                    "it answers, the handshakes are never completed: a spoofed SYN flood"
                } else {
                    "mostly unanswered: a SYN flood, or a service that is down while its clients retry"
                };
                format!(
                    "{table_percent:.0} % of the table is half-open TCP to {victim} port {dport} \
                     from {} sources; {how}",
                    count(*sources)
                )
            }
            Self::ManySources {
                sources,
                table_percent,
            } => format!(
                "{table_percent:.0} % of the table is traffic to {victim} from {} sources, mostly \
                 unanswered: a distributed flood against it",
                count(*sources)
            ),
            Self::BusyService {
                protocol,
                side,
                port,
                sources,
                table_percent,
            } => format!(
                "{table_percent:.0} % of the table is {} {} {victim} {} {port} from {} sources, \
                 mostly answered: a busy service (or many users behind a NAT), normal",
                protocol.as_str(),
                if *side == Side::Source {
                    "from port"
                } else {
                    "to"
                },
                if *side == Side::Source { "to" } else { "port" },
                count(*sources),
            ),
        }
    }

    /// The block this alarm suggests, scoped to the victim.
    fn scope(&self, victim: IpAddr) -> Option<BlockScope> {
        let (protocol, port) = match self {
            Self::Reflection { sport, .. } => (Some(Protocol::Udp), Some((Side::Source, *sport))),
            Self::SynFlood { dport, .. } => {
                (Some(Protocol::Tcp), Some((Side::Destination, *dport)))
            }
            Self::ManySources { .. } => (None, None),
            Self::BusyService { .. } => return None,
        };
        Some(BlockScope {
            direction: Side::Destination,
            network: victim.to_string(),
            protocol,
            port,
        })
    }

    /// What the block also drops, beside the attack, and what else would help (the creators'
    /// proposals say the same of the same blocks).
    pub(crate) fn note(&self, victim: IpAddr) -> Option<String> {
        match self {
            Self::Reflection { sport, service, .. } => Some(format!(
                "This block drops every UDP packet from source port {sport} to {victim}, the \
                 answers to its own {service} queries over UDP too: they fail while it lasts. It \
                 keeps the reflected answers out of this table and away from {victim}; the link \
                 into this host still carries them (only the upstream network can stop that)."
            )),
            Self::SynFlood { dport, .. } => Some(format!(
                "This block drops every new TCP connection to {victim} port {dport}, its \
                 legitimate clients' too: the service is unreachable while it lasts. SYN cookies \
                 (net.ipv4.tcp_syncookies, on by default, used once a listener's SYN backlog \
                 overflows) protect {victim}'s own listener, not this table: every spoofed SYN \
                 still makes an entry here (SYN_SENT for 120 s, SYN_RECV for 60 s once answered). \
                 To keep the service up instead, answer its SYNs on this host with nftables' \
                 synproxy (the SYNs untracked by a notrack rule at raw priority), so only \
                 completed handshakes get an entry."
            )),
            Self::ManySources { .. } => Some(format!(
                "This block drops everything to {victim}, its legitimate traffic too: it takes \
                 {victim} offline while it lasts (as a provider's blackhole route does), to keep \
                 the table for everyone else. Prefer a narrower block if the entries show one \
                 protocol and port."
            )),
            Self::BusyService { .. } => None,
        }
    }
}

/// A destination and what makes it look attacked (possibly nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Victim {
    pub address: IpAddr,
    pub mix: StateMix,
    pub sources: u32,
    pub share_percent: f64,
    pub reasons: Vec<VictimReason>,
}

impl Victim {
    pub fn is_attacked(&self) -> bool {
        self.reasons.iter().any(VictimReason::is_alarm)
    }

    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|reason| reason.describe(self.address))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The first alarm's block, scoped to the victim, with its reason prefilled and its note;
    /// `None` when nothing is an alarm (a busy service gets no block suggested).
    pub fn block_suggestion(&self) -> Option<BlockSuggestion> {
        let alarm = self.reasons.iter().find(|reason| reason.is_alarm())?;
        Some(BlockSuggestion {
            title: format!("Protect {}", self.address),
            scope: alarm.scope(self.address)?,
            reason: super::fit_reason(&alarm.describe(self.address)),
            note: alarm.note(self.address),
        })
    }
}

/// The snapshot's top destinations, each with its reasons, attacked ones first (then the
/// largest). Destinations with fewer than [`MIN_ENTRIES`] entries are noise.
pub fn assess_victims(snapshot: &Snapshot) -> Vec<Victim> {
    let total = snapshot.total.entries;
    let mut victims: Vec<Victim> = snapshot
        .destination_sources
        .top
        .iter()
        .filter(|group| group.mix.entries >= MIN_ENTRIES)
        .map(|group| {
            let mut reasons: Vec<VictimReason> = snapshot
                .destination_services
                .top
                .iter()
                .filter(|service| service.key.destination == group.key)
                .filter_map(|service| service_reason(service, total))
                .collect();
            if !reasons.iter().any(VictimReason::is_alarm)
                && let Some(reason) = many_sources(group, total)
            {
                reasons.push(reason);
            }
            Victim {
                address: group.key,
                mix: group.mix,
                sources: group.sources,
                share_percent: percent(group.mix.entries, total),
                reasons,
            }
        })
        .collect();
    victims.sort_by(|a, b| {
        b.is_attacked()
            .cmp(&a.is_attacked())
            .then(b.mix.entries.cmp(&a.mix.entries))
    });
    victims
}

/// Entries no answer completed: unreplied, or half-open TCP (a SYN_SENT entry is also
/// unreplied; SYN_RECV saw the SYN-ACK but no completed handshake).
fn unanswered(mix: &StateMix) -> u64 {
    mix.unreplied.max(mix.syn_sent).saturating_add(mix.syn_recv)
}

fn service_reason(group: &SourcedGroup<DestinationService>, total: u64) -> Option<VictimReason> {
    let mix = &group.mix;
    let key = group.key;
    if group.sources < MANY_SOURCES || mix.entries < MIN_ENTRIES {
        return None;
    }
    let table_percent = percent(mix.entries, total);
    let answered = percent(unanswered(mix), mix.entries) < UNANSWERED_PERCENT;
    match (key.protocol, key.side) {
        (Protocol::Udp, Side::Source) if !answered => Some(VictimReason::Reflection {
            sport: key.port,
            service: amplifier(key.port).unwrap_or("UDP").to_owned(),
            sources: group.sources,
            entries: mix.entries,
        }),
        (Protocol::Tcp, Side::Destination)
            if percent(mix.syn_sent + mix.syn_recv, mix.entries) >= HALF_OPEN_PERCENT
                && percent(mix.syn_sent + mix.syn_recv, total) >= VICTIM_SHARE_PERCENT =>
        {
            Some(VictimReason::SynFlood {
                dport: key.port,
                sources: group.sources,
                table_percent: percent(mix.syn_sent + mix.syn_recv, total),
                answered: mix.syn_recv > mix.syn_sent,
            })
        }
        _ if answered && table_percent >= LARGE_SHARE_PERCENT => Some(VictimReason::BusyService {
            protocol: key.protocol,
            side: key.side,
            port: key.port,
            sources: group.sources,
            table_percent,
        }),
        _ => None,
    }
}

fn many_sources(group: &SourcedGroup<IpAddr>, total: u64) -> Option<VictimReason> {
    let table_percent = percent(group.mix.entries, total);
    (group.sources >= MANY_SOURCES
        && table_percent >= VICTIM_SHARE_PERCENT
        && percent(unanswered(&group.mix), group.mix.entries) >= UNANSWERED_PERCENT)
        .then_some(VictimReason::ManySources {
            sources: group.sources,
            table_percent,
        })
}

/// Source counts are estimates (within about 10 %): rounded, and said to be so.
fn count(sources: u32) -> String {
    if sources < 100 {
        sources.to_string()
    } else {
        let rounded = (u64::from(sources) + 50) / 100 * 100;
        format!("about {}", thousands(rounded))
    }
}

fn thousands(n: u64) -> String {
    crate::format::thousands(n)
}

#[cfg(test)]
mod tests;
