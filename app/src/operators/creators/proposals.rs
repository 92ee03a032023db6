//! Fixes proposed from the creators (issue 15): the patterns a netfilter engineer names from who
//! creates entries, each with its block. One source creating most new entries: block it.
//! Reflection, many sources sending new UDP flows from an amplifier's port to one victim: block
//! that UDP to the victim from that port (the walk's reflection scope). A distributed flood, most
//! new entries to one destination from many sources: block what goes to the victim, narrowed to
//! a source port when one makes most of it (a block names one address, so `to X dport P` cannot
//! come from counts that do not pair a destination with its port).
//!
//! Nothing is proposed while the table has room (many new entries are then only busy clients: a
//! reverse proxy, a resolver), over a window too short to be a rate, or on the strength of what
//! the counting sets could not name (their uncounted and "everyone else" are nobody's).

use std::net::IpAddr;

use ctguard_protocol::{CreatorCount, CreatorKey, CreatorWindow, Protocol, Side, snapshot};

use crate::{
    operators::block_scope::{BlockScope, BlockSuggestion},
    operators::creators::{per_second, refused, window_words},
    operators::suspicion::{NEAR_FULL_PERCENT, TableFill, VictimReason, fit_reason},
};

/// "Most": a source or a victim making at least this share of every new entry in the window.
/// Blocking less than half of what fills the table would not empty it.
pub const MOST_PERCENT: u64 = 50;
/// ... and at least this many new entries a second (ten times the rate the holders' reasons
/// note as information): a few thousand entries held at UDP's 30 s or SYN_SENT's 120 s.
pub const MIN_PER_SECOND: u64 = 100;
/// A window proposes nothing before it covers this long (one reading at the helper's default
/// interval): a burst over two or three seconds is no rate.
pub const MIN_COVERED_SECS: u32 = 10;
/// Distributed: the victim's new entries are at least this many times what the biggest counted
/// source created in the whole window, so at least this many sources made them and none of them
/// more than a tenth. Fewer, larger senders each hold a large share, which the holders name.
pub const SPREAD_SOURCES: u64 = 10;

/// Why the table needs a fix at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// conntrack refused new flows in the window, its table full (the larger of the per-source
    /// count and the kernel's `drop` statistic, watched seconds or not).
    TurnedAway { packets: u64 },
    /// The table's fill now, at least [`NEAR_FULL_PERCENT`] of its limit.
    NearFull { percent: u64 },
}

impl Pressure {
    /// The pressure on the table in `window` and at `fill`, if any.
    pub fn of(window: &CreatorWindow, fill: Option<TableFill>) -> Option<Self> {
        let turned_away = &window.turned_away;
        let kernel = turned_away
            .kernel_drops
            .saturating_add(turned_away.unwatched_drops);
        let packets = turned_away.counted().max(kernel);
        if packets > 0 {
            return Some(Self::TurnedAway { packets });
        }
        let fill = fill.filter(|fill| fill.at_least(NEAR_FULL_PERCENT))?;
        Some(Self::NearFull {
            percent: fill.count.saturating_mul(100) / fill.max,
        })
    }

    fn describe(self) -> String {
        match self {
            Self::TurnedAway { packets } => format!("the table was full ({})", refused(packets)),
            Self::NearFull { percent } => format!("the table is {percent} % full"),
        }
    }
}

/// Why a window proposes nothing before any pattern is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// No pressure: below [`NEAR_FULL_PERCENT`] and nobody turned away.
    Calm,
    /// The window covers less than [`MIN_COVERED_SECS`].
    ShortWindow { covered_secs: u32 },
}

impl Quiet {
    pub fn explain(self) -> String {
        match self {
            Self::Calm => format!(
                "No fix proposed: the table is below {NEAR_FULL_PERCENT} % full and conntrack \
                 turned nobody away, so many new entries are busy clients, not a problem."
            ),
            Self::ShortWindow { covered_secs } => format!(
                "No fix proposed yet: counted for {covered_secs} s, too short to call a rate \
                 (at least {MIN_COVERED_SECS} s)."
            ),
        }
    }
}

/// A pattern in the creators, with its numbers: rates per second, shares of every new entry in
/// the window, `sources` the fewest that can have made the flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// One source creating most new entries.
    Source {
        source: IpAddr,
        per_second: u64,
        percent: u64,
    },
    /// New UDP flows from an amplifier's source port to one victim, from many sources.
    Reflection {
        victim: IpAddr,
        sport: u16,
        service: &'static str,
        per_second: u64,
        percent: u64,
        sources: u64,
    },
    /// Most new entries to one destination from many sources, no amplifier port explaining them;
    /// `service` the protocol and source port that make most of them, when one does.
    Flood {
        victim: IpAddr,
        per_second: u64,
        percent: u64,
        sources: u64,
        service: Option<(Protocol, u16)>,
    },
}

/// A pattern, in words, and the block that fixes it: the same suggestion (scope, reason, note on
/// its cost and when it is wrong) the holders' reasons give the block form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub pattern: Pattern,
    pub words: String,
    pub suggestion: BlockSuggestion,
}

/// The fixes `window` calls for at `fill` (the table's fill now, if the sample has it), or why it
/// calls for none before any pattern is looked for. Empty when no pattern is found.
pub fn propose(window: &CreatorWindow, fill: Option<TableFill>) -> Result<Vec<Proposal>, Quiet> {
    let pressure = Pressure::of(window, fill).ok_or(Quiet::Calm)?;
    if window.covered_secs < MIN_COVERED_SECS {
        return Err(Quiet::ShortWindow {
            covered_secs: window.covered_secs,
        });
    }
    let top = |key| window.list(key).map_or(&[][..], |list| &list.top[..]);
    let share = |flows: u64| {
        (flows.saturating_mul(100))
            .checked_div(window.new_flows)
            .unwrap_or(0)
            .min(100)
    };
    let most = |flows: u64| {
        window.new_flows > 0
            && flows.saturating_mul(100) >= window.new_flows.saturating_mul(MOST_PERCENT)
            && window.per_second(flows) >= MIN_PER_SECOND
    };
    let context = format!(
        "over {}, while {}",
        window_words(window.seconds),
        pressure.describe()
    );
    let mut proposals = Vec::new();
    // Only a counted source: the uncounted and "everyone else" are many keys or one, unknown.
    let biggest = top(CreatorKey::Source).first().map_or(0, |c| c.new_flows);
    if let Some(source) = top(CreatorKey::Source)
        .first()
        .filter(|c| most(c.new_flows))
    {
        let pattern = Pattern::Source {
            source: source.address,
            per_second: window.per_second(source.new_flows),
            percent: share(source.new_flows),
        };
        proposals.push(proposal(pattern, &context, window, None));
    }
    // Victims: the destinations counted, then those only their source port's set counted.
    let by_port = top(CreatorKey::DestinationSourcePort);
    let mut victims: Vec<(IpAddr, u64)> = Vec::new();
    for creator in top(CreatorKey::Destination).iter().chain(by_port) {
        if !victims
            .iter()
            .any(|(address, _)| *address == creator.address)
        {
            victims.push((creator.address, creator.new_flows));
        }
    }
    for (victim, flows) in victims {
        // Distributed: more than SPREAD_SOURCES times the biggest source (none when no source
        // was counted: then nothing shows that no one source makes them).
        if !most(flows) || biggest == 0 || flows < biggest.saturating_mul(SPREAD_SOURCES) {
            continue;
        }
        // The victim's largest (protocol, source port), if it makes at least half its flows.
        let service = by_port
            .iter()
            .find(|c| c.address == victim)
            .filter(|c| c.new_flows.saturating_mul(2) >= flows)
            .and_then(|c| Some((c.protocol?, c.port.filter(|&port| port != 0)?, c.new_flows)));
        let pattern = match service {
            Some((Protocol::Udp, sport, scoped)) if snapshot::amplifier(sport).is_some() => {
                Pattern::Reflection {
                    victim,
                    sport,
                    service: snapshot::amplifier(sport).unwrap_or("UDP"),
                    per_second: window.per_second(scoped),
                    percent: share(scoped),
                    sources: scoped.div_ceil(biggest),
                }
            }
            _ => Pattern::Flood {
                victim,
                per_second: window.per_second(flows),
                percent: share(flows),
                sources: flows.div_ceil(biggest),
                service: service.map(|(protocol, port, _)| (protocol, port)),
            },
        };
        let uncounted = window
            .list(CreatorKey::Source)
            .map_or(0, |list| list.uncounted);
        proposals.push(proposal(pattern, &context, window, Some(uncounted)));
    }
    Ok(proposals)
}

/// The one (protocol, destination port) every source listed with a service opens (two at
/// least), if they share one: a hint, since those counts do not say to which destination.
fn common_service(window: &CreatorWindow) -> Option<(Protocol, u16)> {
    let listed = &window.list(CreatorKey::SourceDestinationPort)?.top;
    let first: &CreatorCount = listed.first()?;
    let service = (first.protocol?, first.port.filter(|&port| port != 0)?);
    (listed.len() >= 2
        && listed
            .iter()
            .all(|c| c.protocol == Some(service.0) && c.port == Some(service.1)))
    .then_some(service)
}

/// The proposal of `pattern`; `uncounted` the new entries of sources the full set could not
/// name, for a victim's pattern (they could hide one large source).
fn proposal(
    pattern: Pattern,
    context: &str,
    window: &CreatorWindow,
    uncounted: Option<u64>,
) -> Proposal {
    let rate = |n: u64| per_second(n, true);
    let popular = "It is wrong if the traffic is wanted (a launch, a backup run): then give the \
                   table room on the Tuning page instead.";
    let (title, words, scope, note) = match pattern {
        Pattern::Source {
            source,
            per_second,
            percent,
        } => (
            format!("Block {source}"),
            format!(
                "{source} creates {}, {percent} % of all new entries {context}: one source \
                 filling the table",
                rate(per_second)
            ),
            BlockScope::from_address(source.to_string()),
            format!(
                "This block drops everything from {source}, its legitimate traffic too. It is \
                 wrong if {source} is a NAT gateway, proxy or resolver that others reach the \
                 network through (they all lose it), or a server this host needs: then narrow \
                 it to the protocol and port its entries show. {popular}"
            ),
        ),
        Pattern::Reflection {
            victim,
            sport,
            service,
            per_second,
            percent,
            sources,
        } => {
            let walk = VictimReason::Reflection {
                sport,
                service: service.to_owned(),
                sources: 0,
                entries: 0,
            };
            (
                format!("Protect {victim}"),
                format!(
                    "{victim} receives new UDP flows from source port {sport} at {} ({percent} % \
                     of all new entries) from at least {} sources {context}: {service} \
                     reflection against it",
                    rate(per_second),
                    crate::format::thousands(sources),
                ),
                // The walk's reflection scope (`udp to X sport P`).
                to_victim(victim, Some((Protocol::Udp, sport))),
                format!(
                    "{} The counters cannot tell answers nobody asked for from queries: it is \
                     wrong if {victim} serves {service} to peers that send from port {sport} \
                     (NTP servers query each other from port 123); its entries tell (reflected \
                     answers stay unreplied).",
                    walk.note(victim).unwrap_or_default()
                ),
            )
        }
        Pattern::Flood {
            victim,
            per_second,
            percent,
            sources,
            service,
        } => {
            let (how, scope, cost) = match service {
                Some((protocol, sport)) => (
                    format!(
                        "most of them {} from source port {sport}",
                        protocol.as_str()
                    ),
                    to_victim(victim, service),
                    format!(
                        "This block drops every {} packet from source port {sport} to {victim}, \
                         legitimate ones too: the answers to {victim}'s own connections to \
                         servers on port {sport} are lost while it lasts.",
                        protocol.as_str()
                    ),
                ),
                None => {
                    let hint = common_service(window).map(|(protocol, dport)| {
                        let protocol = protocol.as_str();
                        format!(
                            " Every source listed by destination port opens {protocol} port \
                             {dport} (those counts do not say to which destination): if \
                             {victim}'s entries show the same, narrow the block to `{protocol} \
                             to {victim} dport {dport}`."
                        )
                    });
                    let walk = VictimReason::ManySources {
                        sources: 0,
                        table_percent: 0.0,
                    };
                    (
                        "no one source port makes half of them".to_owned(),
                        to_victim(victim, None),
                        format!(
                            "{}{}",
                            walk.note(victim).unwrap_or_default(),
                            hint.unwrap_or_default()
                        ),
                    )
                }
            };
            (
                format!("Protect {victim}"),
                format!(
                    "{victim} receives new flows at {} ({percent} % of all new entries) from at \
                     least {} sources, {how}, {context}: a distributed flood against it",
                    rate(per_second),
                    crate::format::thousands(sources),
                ),
                scope,
                format!("{cost} {popular}"),
            )
        }
    };
    let unnamed = uncounted.filter(|&n| n > 0).map(|n| {
        format!(
            " Sources the full counting set could not name created {} of all new entries: one \
             of them could be larger than any listed, so look at the entries first.",
            crate::operators::creators::rate(window, n)
        )
    });
    Proposal {
        pattern,
        suggestion: BlockSuggestion {
            title,
            scope,
            reason: fit_reason(&words),
            note: Some(format!("{note}{}", unnamed.unwrap_or_default())),
        },
        words,
    }
}

/// Everything to `victim`, or only `protocol` from source port `sport` to it.
fn to_victim(victim: IpAddr, service: Option<(Protocol, u16)>) -> BlockScope {
    BlockScope {
        direction: Side::Destination,
        network: victim.to_string(),
        protocol: service.map(|(protocol, _)| protocol),
        port: service.map(|(_, sport)| (Side::Source, sport)),
    }
}

#[cfg(test)]
mod tests;
