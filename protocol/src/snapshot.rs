//! One aggregated walk of the conntrack table (top talkers with their state mix) and the bounded
//! entry list for drill-down.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::target::{Protocol, Side};

/// A TCP connection-tracking state, as `conntrack -L` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    Syn2,
}

/// How a group of entries is made up: every count is a number of entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateMix {
    pub entries: u64,
    /// No reply seen: floods, scans, reflection.
    pub unreplied: u64,
    /// Replies seen both ways: the kernel will not evict these early.
    pub assured: u64,
    pub syn_sent: u64,
    pub syn_recv: u64,
    pub established: u64,
    pub time_wait: u64,
    /// FIN_WAIT, CLOSE_WAIT, LAST_ACK, CLOSE.
    pub closing: u64,
    /// Source-NATed by this host: connections a guest behind it opened outward.
    pub source_nat: u64,
}

/// One group (a source, a port, ...) and its mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group<K> {
    pub key: K,
    pub mix: StateMix,
}

/// The largest groups, biggest first, and what the rest adds up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopList<K> {
    pub top: Vec<Group<K>>,
    /// Entries outside the listed groups.
    pub rest: StateMix,
    /// How many distinct groups the walk saw (a lower bound once the tracker had to fold some).
    pub distinct: u64,
}

/// A source address and a destination port together: who hammers which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePort {
    pub source: IpAddr,
    pub dport: u16,
}

/// UDP services abused for reflection and amplification, by the source port their answers come
/// from. The helper counts UDP entries by (source, port) for these ports only: reflected traffic
/// comes from them, and counting every ephemeral port would only churn the walk's maps.
pub const AMPLIFIERS: [(u16, &str); 7] = [
    (53, "DNS"),
    (123, "NTP"),
    (19, "chargen"),
    (161, "SNMP"),
    (389, "CLDAP"),
    (1900, "SSDP"),
    (11211, "memcached"),
];

/// The service an amplifier port belongs to, if it is one.
pub fn amplifier(port: u16) -> Option<&'static str> {
    AMPLIFIERS
        .iter()
        .find(|(amplifier, _)| *amplifier == port)
        .map(|(_, service)| *service)
}

/// A source address sending from one port: `udp from 203.0.113.53 sport 53` is how reflected
/// DNS answers look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSport {
    pub source: IpAddr,
    pub protocol: Protocol,
    pub sport: u16,
}

/// How widely one of the top sources spreads its entries: the number of distinct destination
/// ports and destination addresses, each estimated in a fixed 512-bit sketch (linear counting,
/// within a few percent up to about a thousand, then saturating at [`SourceSpread::SATURATED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpread {
    pub source: IpAddr,
    pub dports: u32,
    pub destinations: u32,
}

impl SourceSpread {
    /// The estimate a full sketch gives: "this many or more".
    pub const SATURATED: u32 = 3_194;
}

/// What converges on one destination on one service: TCP to one of its ports (where a spoofed
/// SYN flood lands), or UDP from one of the [`AMPLIFIERS`]' source ports (reflected answers from
/// many servers). Its text form is the block scoped to the victim: `tcp to X dport 80`,
/// `udp to X sport 53`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationService {
    pub destination: IpAddr,
    pub protocol: Protocol,
    /// Which port of the packets: the destination port for TCP, the source port for reflected UDP.
    pub side: Side,
    pub port: u16,
}

/// A group and how many distinct source addresses its entries come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcedGroup<K> {
    pub key: K,
    pub mix: StateMix,
    /// Distinct sources, estimated in a fixed sketch (HyperLogLog, within about 10 %).
    pub sources: u32,
}

/// The largest groups by entries with their distinct sources, biggest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcedList<K> {
    pub top: Vec<SourcedGroup<K>>,
    /// Entries outside the listed groups.
    pub rest: StateMix,
    /// Distinct groups seen (a lower bound once the tracker had to fold some).
    pub distinct: u64,
}

impl<K> Default for SourcedList<K> {
    fn default() -> Self {
        Self {
            top: Vec::new(),
            rest: StateMix::default(),
            distinct: 0,
        }
    }
}

/// One walk of the table, aggregated as it streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub taken_unix_ms: u64,
    pub walk_ms: u64,
    pub total: StateMix,
    pub sources: TopList<IpAddr>,
    pub destinations: TopList<IpAddr>,
    pub dports: TopList<u16>,
    pub source_dports: TopList<SourcePort>,
    /// UDP entries from the [`AMPLIFIERS`]' ports, by (source, protocol, source port).
    pub source_sports: TopList<SourceSport>,
    /// The spread of each source in `sources.top` (none for a source that appeared only after
    /// the helper stopped sketching new ones).
    pub source_spread: Vec<SourceSpread>,
    /// By layer-4 protocol name (`tcp`, `udp`, `icmp`, ...).
    pub protocols: TopList<String>,
    pub tcp_states: TopList<TcpState>,
    /// By destination, with distinct sources: a victim of many sources with a few entries each,
    /// which no per-source list shows.
    #[serde(default)]
    pub destination_sources: SourcedList<IpAddr>,
    /// By (destination, protocol, port), with distinct sources: TCP by destination port, UDP
    /// from the amplifiers' source ports.
    #[serde(default)]
    pub destination_services: SourcedList<DestinationService>,
}

/// Which entries to list for drill-down. Every field narrows; `limit` bounds the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFilter {
    /// Entries whose original source or destination lies in this network (canonical form).
    #[serde(
        default,
        deserialize_with = "crate::address::deserialize_optional_network"
    )]
    pub network: Option<IpNet>,
    /// Entries whose original source or destination port is this.
    pub port: Option<u16>,
    pub protocol: Option<Protocol>,
    pub tcp_state: Option<TcpState>,
    /// 1..=[`EntryFilter::MAX_LIMIT`].
    pub limit: u32,
}

impl EntryFilter {
    pub const MAX_LIMIT: u32 = 1_000;
}

/// One conntrack entry, original direction first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackEntry {
    pub protocol: String,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub reply_source: IpAddr,
    pub reply_destination: IpAddr,
    pub tcp_state: Option<TcpState>,
    pub timeout_secs: u64,
    pub unreplied: bool,
    pub assured: bool,
}
