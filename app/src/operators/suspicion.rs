//! Why a source looks suspicious, in words: the thresholds (all in this one place) and the
//! assessment of a snapshot's top sources against them. Some reasons are information, not alarms:
//! a large share alone, and connections held open while the table has room (what reverse proxies,
//! connection pools and NAT gateways do); only alarms make a source suspicious and prefill a block.

use std::net::IpAddr;

use ctguard_protocol::{
    CreatorKey, Creators, Protocol, Side,
    snapshot::{Snapshot, SourceSpread, StateMix},
};
use serde::{Deserialize, Serialize};

use crate::operators::block_scope::{BlockScope, BlockSuggestion};

pub mod victims;

pub use victims::{Victim, VictimReason, assess_victims};

/// A source holding at least this share of the table is worth a look (information, no alarm).
pub const LARGE_SHARE_PERCENT: f64 = 10.0;
/// Entries that never saw a reply: above this share a source is flooding or scanning.
pub const UNREPLIED_PERCENT: f64 = 90.0;
/// A large source whose entries are at least this share ASSURED holds connections open: the kernel
/// never evicts assured entries to make room (`early_drop` skips them), so a table full of them
/// drops new connections. Normal for reverse proxies, pools and NAT gateways; a flood only while
/// the table is near full and the source keeps adding them (see [`judge_held_open`]).
pub const HELD_OPEN_PERCENT: f64 = 90.0;
/// The table counts as near full from this share of its limit.
pub const NEAR_FULL_PERCENT: u64 = 90;
/// At or above this share of its limit the table is full: the kernel refuses new entries, so a
/// source can no longer grow, only hold what it has while the drop counter rises.
pub const FULL_PERCENT: u64 = 99;
/// "Keeps adding": at least this share of the limit more assured entries than at the earlier walk
/// (a flood adds thousands a second; a pool's size wobbles by a few).
pub const GROWTH_PERCENT_OF_LIMIT: u64 = 1;
/// "Holds them": at least this share of the assured entries of the earlier walk are still there
/// (a flood's connections churn a little).
pub const HOLDING_PERCENT: u64 = 98;
/// Half-open TCP (SYN_SENT or SYN_RECV) above this share: a SYN flood or a port scan.
pub const HALF_OPEN_PERCENT: f64 = 80.0;
/// One source to at least this many distinct destination ports: a port scan, or reflected
/// replies landing on random ports.
pub const MANY_PORTS: usize = 20;
/// A source-NATed (internal) source to at least this many distinct destinations: a guest
/// scanning or spraying the internet, likely compromised...
pub const MANY_DESTINATIONS: u32 = 100;
/// Many ports, reflection and a spray are alarms only when at least this share of the source's
/// entries are unanswered (unreplied, or half-open TCP): a monitor scraping thirty ports, a VoIP
/// gateway's media ports or a browser reaching a hundred CDNs get their answers; a scan's probes,
/// reflected answers nobody asked for and a worm's probes do not.
pub const UNANSWERED_PERCENT: f64 = 50.0;
/// At least this share of a source's entries NATed by the host: it is a guest behind it.
pub const INTERNAL_PERCENT: f64 = 90.0;
/// At least this share of a source's entries from one UDP amplifier port: reflection.
pub const REFLECTION_PERCENT: f64 = 50.0;
/// UDP services abused for reflection, by source port (the helper counts only these).
pub use ctguard_protocol::snapshot::AMPLIFIERS;
/// Below this many entries a source is noise, whatever its mix.
pub const MIN_ENTRIES: u64 = 50;
/// A source among the top creators (by source, over the last minute) that creates at least this
/// many entries a second gets its rate among its reasons, as information: it is who keeps the
/// table filling, short flows included. Below it a busy client's new connections are no news.
/// Whatever its entries: a source whose flows expire between two walks holds few.
pub const MANY_CREATED_PER_SECOND: u64 = 10;

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
        verdict: HeldOpenVerdict,
    },
    HalfOpen {
        percent: f64,
    },
    ManyPorts {
        ports: usize,
        /// Most of the source's entries were answered: information, not an alarm.
        answered: bool,
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
    /// Among the top creators of new entries over the last minute (the kernel's counters, not
    /// the walk): information.
    Creates {
        per_second: u64,
    },
}

/// Whether connections held open are a flood, judged against the table's fill and an earlier walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeldOpenVerdict {
    /// Without the table's fill: no judgement.
    Unknown,
    /// The table has room (or the source's assured entries are falling): normal.
    Normal,
    /// The table is near full; a second walk will tell whether the source keeps adding.
    Watching,
    /// Near full, and the source added assured entries since the earlier walk, or held them at a
    /// full table while the kernel dropped new connections.
    Flood,
}

/// The table's fill when a walk was taken, from the live sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFill {
    pub count: u64,
    pub max: u64,
    /// The kernel's `drop` counter (all CPUs).
    pub drop: u64,
}

impl TableFill {
    /// Whether the table holds at least `percent` of its limit.
    pub(crate) fn at_least(&self, percent: u64) -> bool {
        self.max > 0 && self.count.saturating_mul(100) >= self.max.saturating_mul(percent)
    }
}

/// An earlier, different walk of the table: its suspects and the fill it was taken at.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierWalk {
    pub taken_unix_ms: u64,
    pub suspects: Vec<Suspect>,
    pub fill: Option<TableFill>,
}

impl Reason {
    /// Whether the reason is an alarm (makes the source suspicious and prefills a block) rather
    /// than information.
    pub fn is_alarm(&self) -> bool {
        match self {
            Self::LargeShare { .. } | Self::Creates { .. } => false,
            Self::HeldOpen { verdict, .. } => *verdict == HeldOpenVerdict::Flood,
            Self::ManyPorts { answered, .. } => !answered,
            _ => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::LargeShare { percent } => format!("{percent:.0}% of the table"),
            Self::Unreplied { percent } => {
                format!("{percent:.0}% unreplied: likely a flood or scan")
            }
            Self::HeldOpen { percent, verdict } => {
                let held = format!(
                    "{percent:.0}% assured: connections held open, which the kernel cannot evict"
                );
                match verdict {
                    HeldOpenVerdict::Flood => format!(
                        "{held}; the table is near full and it keeps adding them (or, at a full \
                         table, holds them while the kernel drops new connections): a connection flood"
                    ),
                    HeldOpenVerdict::Watching => format!(
                        "{held}; the table is near full: a second walk tells whether it keeps adding them"
                    ),
                    HeldOpenVerdict::Normal => format!(
                        "{held}; normal for reverse proxies, connection pools and NAT gateways while \
                         the table has room"
                    ),
                    HeldOpenVerdict::Unknown => format!(
                        "{held}; normal for reverse proxies, connection pools and NAT gateways \
                         unless the table is near full"
                    ),
                }
            }
            Self::HalfOpen { percent } => {
                format!("{percent:.0}% half-open TCP: SYN flood or port scan")
            }
            Self::ManyPorts {
                ports,
                answered: false,
            } => format!(
                "to {}{ports} destination ports: a scan, or reflected replies (monitoring, \
                 VoIP media, FTP data and traceroute also reach many ports)",
                approximately(*ports)
            ),
            Self::ManyPorts {
                ports,
                answered: true,
            } => format!(
                "to {}{ports} destination ports, mostly answered: what monitoring, VoIP media and \
                 FTP data do",
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
                "an internal address (behind this host's NAT) opening connections to {}{destinations} destinations, mostly unanswered: compromised guest?",
                approximately(*destinations as usize)
            ),
            Self::Creates { per_second } => {
                format!(
                    "{} (last minute)",
                    crate::operators::creators::creates(*per_second)
                )
            }
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
    /// Whether any reason is an alarm; information alone (a large share, connections held open
    /// while the table has room) is not.
    pub fn is_suspicious(&self) -> bool {
        self.reasons.iter().any(Reason::is_alarm)
    }

    /// The reasons that are information only, in words, or `None` without any.
    pub fn information(&self) -> Option<String> {
        let words: Vec<String> = self
            .reasons
            .iter()
            .filter(|reason| !reason.is_alarm())
            .map(Reason::describe)
            .collect();
        (!words.is_empty()).then(|| words.join("; "))
    }

    /// What the suggested block also does, beside stopping the attack: a reflection block drops
    /// every answer from that server's port, its legitimate answers to this host included.
    pub fn block_note(&self) -> Option<String> {
        self.reasons.iter().find_map(|reason| match reason {
            Reason::Reflection { sport, service, .. } => Some(format!(
                "This block drops every UDP packet from {} source port {sport}, also that \
                 server's legitimate {service} answers: if this host or its guests use it (as a \
                 resolver, a time server), those requests fail while the block lasts. Delete \
                 the entries instead if the flood has stopped.",
                self.address
            )),
            _ => None,
        })
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

    /// The block form's start for this source: its scope always (an operator may block any
    /// source), a reason only when an alarm makes the case for it.
    pub fn block_suggestion(&self) -> BlockSuggestion {
        BlockSuggestion {
            title: format!("Block {}", self.address),
            scope: self.suggested_scope(),
            reason: if self.is_suspicious() {
                self.block_reason()
            } else {
                String::new()
            },
            note: self.block_note(),
        }
    }

    /// One line for a block's reason field.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(Reason::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The reason a block of this source starts with: its reasons in words, cut to what a
    /// block's reason may hold, so the prefilled form is never refused for its length.
    pub fn block_reason(&self) -> String {
        fit_reason(&self.summary())
    }
}

/// `text` cut on a character boundary to [`ShortText::MAX_CHARS`] characters, ending in `…`
/// where it was cut.
pub fn fit_reason(text: &str) -> String {
    let max = ctguard_protocol::ShortText::MAX_CHARS;
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
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

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The snapshot's top sources, each with its reasons, those with the most alarms (then the
/// largest) first. Connections held open are judged [`HeldOpenVerdict::Unknown`] here: the snapshot does
/// not carry the table's limit; [`judge_held_open`] judges them against the live fill.
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
    sort(&mut suspects);
    suspects
}

fn alarms(suspect: &Suspect) -> usize {
    suspect.reasons.iter().filter(|r| r.is_alarm()).count()
}

fn sort(suspects: &mut [Suspect]) {
    suspects.sort_by(|a, b| {
        alarms(b)
            .cmp(&alarms(a))
            .then(b.mix.entries.cmp(&a.mix.entries))
    });
}

/// Adds "creates N entries/s" to the reasons of each suspect that is also a top creator: listed
/// among the sources of the helper's last-minute window with at least
/// [`MANY_CREATED_PER_SECOND`]. Information only: the order stays.
pub fn note_creators(suspects: &mut [Suspect], creators: &Creators) {
    let Some(window) = creators.window(crate::operators::creators::DEFAULT_WINDOW_SECS) else {
        return;
    };
    let Some(list) = window.list(CreatorKey::Source) else {
        return;
    };
    for suspect in suspects {
        let Some(creator) = list.top.iter().find(|c| c.address == suspect.address) else {
            continue;
        };
        let per_second = window.per_second(creator.new_flows);
        if per_second >= MANY_CREATED_PER_SECOND {
            suspect.reasons.push(Reason::Creates { per_second });
        }
    }
}

/// Judges every "held open" reason against the table's fill now and an earlier, different walk:
/// a flood only while the table is near full and the source keeps adding assured entries (or, at
/// a full table where it cannot add any, holds them while the kernel's drop counter rises; held
/// without drops yet, it is watched again); otherwise normal. Re-sorts, alarms first.
pub fn judge_held_open(
    mut suspects: Vec<Suspect>,
    fill: Option<TableFill>,
    earlier: Option<&EarlierWalk>,
) -> Vec<Suspect> {
    for suspect in &mut suspects {
        let before = earlier.and_then(|walk| {
            walk.suspects
                .iter()
                .find(|s| s.address == suspect.address)
                .map(|s| s.mix.assured)
        });
        let now = suspect.mix.assured;
        for reason in &mut suspect.reasons {
            if let Reason::HeldOpen { verdict, .. } = reason {
                *verdict = held_open_verdict(fill, earlier.and_then(|w| w.fill), before, now);
            }
        }
    }
    sort(&mut suspects);
    suspects
}

fn held_open_verdict(
    fill: Option<TableFill>,
    earlier_fill: Option<TableFill>,
    assured_before: Option<u64>,
    assured_now: u64,
) -> HeldOpenVerdict {
    let Some(fill) = fill else {
        return HeldOpenVerdict::Unknown;
    };
    if !fill.at_least(NEAR_FULL_PERCENT) {
        return HeldOpenVerdict::Normal;
    }
    let Some(before) = assured_before else {
        return HeldOpenVerdict::Watching;
    };
    // The sampler's drop total: per-CPU wraps already taken into account, it never falls.
    let dropping = earlier_fill
        .is_some_and(|earlier| crate::dashboard::trend::counter_delta(earlier.drop, fill.drop) > 0);
    let full = fill.at_least(FULL_PERCENT);
    let growth = (fill.max * GROWTH_PERCENT_OF_LIMIT / 100).max(1);
    let adding = assured_now >= before.saturating_add(growth);
    let holding = assured_now.saturating_mul(100) >= before.saturating_mul(HOLDING_PERCENT);
    if adding || (holding && full && dropping) {
        HeldOpenVerdict::Flood
    } else if holding && full {
        // Nothing refused between the walks yet: look again.
        HeldOpenVerdict::Watching
    } else {
        HeldOpenVerdict::Normal
    }
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
            reasons.push(Reason::HeldOpen {
                percent: assured,
                verdict: HeldOpenVerdict::Unknown,
            });
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
    // A SYN_SENT entry is also unreplied; SYN_RECV saw a reply but no completed handshake.
    let unanswered = percent(
        mix.unreplied.max(mix.syn_sent).saturating_add(mix.syn_recv),
        mix.entries,
    ) >= UNANSWERED_PERCENT;
    if ports >= MANY_PORTS {
        let reflected = unanswered
            .then(|| reflection(snapshot, source, mix))
            .flatten();
        reasons.push(reflected.unwrap_or(Reason::ManyPorts {
            ports,
            answered: !unanswered,
        }));
    }
    let internal = percent(mix.source_nat, mix.entries) >= INTERNAL_PERCENT;
    if let Some(spread) = spread
        && internal
        && unanswered
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
mod reason_length_tests {
    use super::fit_reason;
    use ctguard_protocol::ShortText;

    #[test]
    fn a_prefilled_reason_always_fits_a_block() {
        let long = "100% assured: connections held open, which the kernel cannot evict; ".repeat(5);
        let fitted = fit_reason(&long);
        assert_eq!(fitted.chars().count(), ShortText::MAX_CHARS);
        assert!(fitted.ends_with('…'));
        assert!(ShortText::new(fitted).is_ok(), "the helper takes it");
        assert_eq!(
            fit_reason("a flood"),
            "a flood",
            "short reasons are kept whole"
        );
        let wide = "é".repeat(ShortText::MAX_CHARS + 1);
        assert!(
            ShortText::new(fit_reason(&wide)).is_ok(),
            "cut on a character boundary"
        );
    }
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
            destination_sources: Default::default(),
            destination_services: Default::default(),
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
        assert!(suspects[0].is_suspicious());
        assert!(!suspects[1].is_suspicious(), "a large share alone");
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
        assert!(flooder.reasons.contains(&Reason::ManyPorts {
            ports: 25,
            answered: false
        }));
    }

    fn held(entries: u64) -> StateMix {
        StateMix {
            assured: entries,
            established: entries,
            ..mix(entries, 0, 0)
        }
    }

    fn fill(count: u64, max: u64, drop: u64) -> Option<TableFill> {
        Some(TableFill { count, max, drop })
    }

    fn verdict(suspect: &Suspect) -> Option<HeldOpenVerdict> {
        suspect.reasons.iter().find_map(|reason| match reason {
            Reason::HeldOpen { verdict, .. } => Some(*verdict),
            _ => None,
        })
    }

    #[test]
    fn a_large_share_alone_is_information_not_a_reason_to_block() {
        let suspects = assess(&snapshot(
            vec![(CLIENT, mix(9_000, 0, 0)), (FLOODER, mix(1_000, 0, 0))],
            vec![],
        ));
        let client = &suspects[0];
        assert_eq!(client.reasons, vec![Reason::LargeShare { percent: 90.0 }]);
        assert!(!client.is_suspicious());
        assert_eq!(client.information().as_deref(), Some("90% of the table"));
    }

    #[test]
    fn held_open_is_not_judged_without_the_tables_fill() {
        let suspects = assess(&snapshot(
            vec![(FLOODER, held(3_900)), (CLIENT, mix(196, 196, 0))],
            vec![],
        ));
        let flooder = suspects
            .iter()
            .find(|s| s.address == FLOODER)
            .expect("listed");
        assert!(
            flooder.reasons.contains(&Reason::HeldOpen {
                percent: 100.0,
                verdict: HeldOpenVerdict::Unknown
            }),
            "{:?}",
            flooder.reasons
        );
        assert!(!flooder.is_suspicious(), "no block is prefilled");
        assert!(
            flooder
                .information()
                .is_some_and(|text| text.contains("unless the table is near full"))
        );
    }

    #[test]
    fn a_busy_reverse_proxy_holding_connections_while_the_table_has_room_is_normal() {
        let suspects = assess(&snapshot(
            vec![(CLIENT, held(30_000)), (FLOODER, mix(5_000, 0, 0))],
            vec![],
        ));
        let judged = judge_held_open(suspects, fill(35_000, 262_144, 7), None);
        let proxy = judged.iter().find(|s| s.address == CLIENT).expect("listed");
        assert_eq!(verdict(proxy), Some(HeldOpenVerdict::Normal));
        assert!(!proxy.is_suspicious());
        let words = proxy.information().expect("information");
        assert!(
            words.contains("normal for reverse proxies, connection pools and NAT gateways"),
            "{words}"
        );
    }

    #[test]
    fn held_open_at_a_near_full_table_is_watched_then_called_a_flood_when_it_keeps_adding() {
        let first = assess(&snapshot(
            vec![(FLOODER, held(3_500)), (CLIENT, mix(196, 196, 0))],
            vec![],
        ));
        let watched = judge_held_open(first.clone(), fill(3_800, 4_096, 10), None);
        assert_eq!(verdict(&watched[1]), Some(HeldOpenVerdict::Watching));
        assert!(
            !watched
                .iter()
                .any(|s| s.address == FLOODER && s.is_suspicious())
        );

        let earlier = EarlierWalk {
            taken_unix_ms: 0,
            suspects: first,
            fill: fill(3_800, 4_096, 10),
        };
        let second = assess(&snapshot(
            vec![(FLOODER, held(3_700)), (CLIENT, mix(196, 196, 0))],
            vec![],
        ));
        let judged = judge_held_open(second, fill(3_950, 4_096, 10), Some(&earlier));
        let flooder = &judged[0];
        assert_eq!(flooder.address, FLOODER, "alarms first");
        assert_eq!(verdict(flooder), Some(HeldOpenVerdict::Flood));
        assert!(flooder.is_suspicious());
        let summary = flooder.summary();
        assert!(summary.contains("it keeps adding them"), "{summary}");
        assert!(summary.ends_with("a connection flood"), "{summary}");
        assert_eq!(flooder.suggested_scope().target_text(), "from 203.0.113.66");
    }

    #[test]
    fn at_a_full_table_holding_steady_is_a_flood_only_while_the_kernel_drops() {
        let walk = assess(&snapshot(vec![(FLOODER, held(4_000))], vec![]));
        let earlier = EarlierWalk {
            taken_unix_ms: 0,
            suspects: walk.clone(),
            fill: fill(4_096, 4_096, 100),
        };
        let dropping = judge_held_open(walk.clone(), fill(4_096, 4_096, 180), Some(&earlier));
        assert_eq!(verdict(&dropping[0]), Some(HeldOpenVerdict::Flood));
        let quiet = judge_held_open(walk.clone(), fill(4_096, 4_096, 100), Some(&earlier));
        assert_eq!(
            verdict(&quiet[0]),
            Some(HeldOpenVerdict::Watching),
            "a full pool the kernel has refused nothing for yet: look again"
        );
        assert!(!quiet[0].is_suspicious());
        // A flood's connections churn a little: a small fall still holds the table.
        let churned = assess(&snapshot(vec![(FLOODER, held(3_950))], vec![]));
        let churning = judge_held_open(churned, fill(4_096, 4_096, 180), Some(&earlier));
        assert_eq!(verdict(&churning[0]), Some(HeldOpenVerdict::Flood));
        // A pool wobbling by a few entries at a near-full table is not adding.
        let wobble = assess(&snapshot(vec![(FLOODER, held(4_010))], vec![]));
        let pool = judge_held_open(wobble, fill(3_900, 4_096, 100), Some(&earlier));
        assert_eq!(verdict(&pool[0]), Some(HeldOpenVerdict::Normal));
        // Falling assured entries are a draining pool, not a flood.
        let fewer = assess(&snapshot(vec![(FLOODER, held(3_000))], vec![]));
        let draining = judge_held_open(fewer, fill(3_900, 4_096, 180), Some(&earlier));
        assert_eq!(verdict(&draining[0]), Some(HeldOpenVerdict::Normal));
    }

    #[test]
    fn a_small_source_of_assured_entries_is_just_a_busy_client() {
        let suspects = assess(&snapshot(
            vec![(FLOODER, mix(9_400, 0, 0)), (CLIENT, held(600))],
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
        assert!(reasons.contains(&Reason::ManyPorts {
            ports: 2_400,
            answered: false
        }));
        assert_eq!(
            Reason::ManyPorts {
                ports: 2_400,
                answered: false
            }
            .describe(),
            "to about 2400 destination ports: a scan, or reflected replies (monitoring, VoIP \
             media, FTP data and traceroute also reach many ports)"
        );
    }

    #[test]
    fn a_monitor_scraping_many_ports_that_answer_is_not_suspicious() {
        let scraping = StateMix {
            assured: 290,
            established: 40,
            time_wait: 250,
            ..mix(300, 10, 0)
        };
        let mut seen = snapshot(vec![(CLIENT, scraping)], vec![]);
        seen.source_spread = vec![SourceSpread {
            source: CLIENT,
            dports: 30,
            destinations: 1,
        }];
        let monitor = assess(&seen).remove(0);
        assert!(monitor.reasons.contains(&Reason::ManyPorts {
            ports: 30,
            answered: true
        }));
        assert!(!monitor.is_suspicious(), "{:?}", monitor.reasons);
        let words = monitor.information().expect("information");
        assert!(
            words.contains("mostly answered: what monitoring"),
            "{words}"
        );
    }

    #[test]
    fn answered_udp_from_port_53_is_not_reflection() {
        // A name server that talks to this host from port 53 (and gets answers) is no reflector.
        let mut seen = snapshot(vec![(FLOODER, mix(400, 20, 0))], vec![]);
        seen.source_sports = list(vec![Group {
            key: SourceSport {
                source: FLOODER,
                protocol: Protocol::Udp,
                sport: 53,
            },
            mix: mix(400, 20, 0),
        }]);
        seen.source_spread = vec![SourceSpread {
            source: FLOODER,
            dports: 300,
            destinations: 1,
        }];
        let server = assess(&seen).remove(0);
        assert!(
            !server
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::Reflection { .. })),
            "{:?}",
            server.reasons
        );
        assert!(!server.is_suspicious());
        assert_eq!(server.suggested_scope().target_text(), "from 203.0.113.66");
    }

    #[test]
    fn the_reflection_block_says_it_also_drops_the_servers_legitimate_answers() {
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
        let reflector = assess(&seen).remove(0);
        let note = reflector
            .block_note()
            .expect("a note on the reflection block");
        assert!(
            note.contains("also that server's legitimate DNS answers"),
            "{note}"
        );
        assert!(note.contains("203.0.113.66 source port 53"), "{note}");
        // A plain flood's block needs no such note.
        let flood = assess(&snapshot(vec![(CLIENT, mix(900, 880, 0))], vec![])).remove(0);
        assert_eq!(flood.block_note(), None);
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
        assert!(
            guest
                .summary()
                .contains("mostly unanswered: compromised guest?")
        );
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
    fn a_guest_whose_many_connections_are_answered_is_not_a_spray() {
        // A NAT gateway's user browsing: 640 destinations, every connection answered.
        let browsing = StateMix {
            source_nat: 900,
            assured: 900,
            established: 900,
            ..mix(900, 0, 0)
        };
        let mut seen = snapshot(vec![(CLIENT, browsing)], vec![]);
        seen.source_spread = vec![SourceSpread {
            source: CLIENT,
            dports: 2,
            destinations: 640,
        }];
        let guest = assess(&seen).remove(0);
        assert!(
            !guest
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::InternalSpray { .. })),
            "{:?}",
            guest.reasons
        );
        // Half-open TCP counts as unanswered.
        let probing = StateMix {
            source_nat: 900,
            syn_sent: 500,
            unreplied: 500,
            syn_recv: 100,
            ..mix(900, 500, 500)
        };
        seen.sources = list(vec![Group {
            key: CLIENT,
            mix: probing,
        }]);
        seen.total.entries = 900;
        assert!(
            assess(&seen)
                .remove(0)
                .reasons
                .contains(&Reason::InternalSpray { destinations: 640 })
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

    fn creators(counts: &[(IpAddr, u64)]) -> Creators {
        use ctguard_protocol::{CreatorCount, CreatorList, CreatorWindow};
        let list = CreatorList {
            key: CreatorKey::Source,
            top: counts
                .iter()
                .map(|&(address, new_flows)| CreatorCount {
                    address,
                    protocol: None,
                    port: None,
                    new_flows,
                })
                .collect(),
            rest: 0,
            uncounted: 0,
        };
        Creators {
            counting: true,
            problem: None,
            set_capacity: 65_536,
            sample_secs: 10,
            sampled_at: 0,
            windows: vec![CreatorWindow {
                seconds: 60,
                covered_secs: 60,
                new_flows: counts.iter().map(|(_, n)| n).sum(),
                lists: vec![list],
                turned_away: ctguard_protocol::creators::TurnedAway {
                    top: Vec::new(),
                    rest: 0,
                    uncounted: 0,
                    kernel_drops: 0,
                    unwatched_drops: 0,
                },
            }],
            watching_since: None,
            watch_from_percent: 90,
        }
    }

    #[test]
    fn a_top_creator_gets_its_rate_among_its_reasons_a_busy_holder_that_creates_few_does_not() {
        // The flooder's short flows expire between walks: it holds few entries and creates many.
        // The client holds many keep-alive connections and opens one now and then.
        let mut suspects = assess(&snapshot(
            vec![(CLIENT, held(20_000)), (FLOODER, mix(60, 60, 0))],
            vec![],
        ));
        let before: Vec<Suspect> = suspects.clone();
        note_creators(
            &mut suspects,
            &creators(&[(FLOODER, 540_000), (CLIENT, 120)]),
        );
        let of = |address: IpAddr| {
            suspects
                .iter()
                .find(|s| s.address == address)
                .expect("listed")
                .clone()
        };
        let flooder = of(FLOODER);
        assert!(
            flooder
                .reasons
                .contains(&Reason::Creates { per_second: 9_000 })
        );
        assert!(
            flooder
                .summary()
                .contains("creates 9,000 entries/s (last minute)"),
            "{}",
            flooder.summary()
        );
        assert!(
            !of(CLIENT)
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::Creates { .. })),
            "2 entries/s is below the bar"
        );
        assert!(!Reason::Creates { per_second: 9_000 }.is_alarm());
        assert_eq!(
            before.iter().map(|s| s.address).collect::<Vec<_>>(),
            suspects.iter().map(|s| s.address).collect::<Vec<_>>(),
            "information: the order stays"
        );
        // Without a minute window (or without the source list), nothing is added.
        let mut unchanged = before.clone();
        let mut answer = creators(&[(FLOODER, 540_000)]);
        answer.windows[0].seconds = 10;
        note_creators(&mut unchanged, &answer);
        assert_eq!(unchanged, before);
    }

    #[test]
    fn an_empty_table_has_no_suspects() {
        assert!(assess(&snapshot(vec![], vec![])).is_empty());
    }
}
