//! Who creates conntrack entries: new flows counted by the kernel in the helper's counting table
//! (one count per entry conntrack creates), answered as counts over three trailing windows.
//!
//! Holdings (the snapshot) say who *has* entries; these say who *makes* them, which catches the
//! short-lived flows that expire between two walks and costs no walk at all.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::target::Protocol;

/// The trailing windows every answer covers, in seconds: the last 10 s, minute and 10 minutes.
pub const WINDOWS_SECS: [u32; 3] = [10, 60, 600];

/// The most creators per list a client may ask for.
pub const MAX_CREATORS_PER_LIST: u16 = 50;

/// What one counting set is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatorKey {
    /// The flow's original source address.
    Source,
    /// The flow's original destination address.
    Destination,
    /// Destination, protocol and source port (TCP and UDP): a reflection, e.g. answers from
    /// port 53 or 123 of many servers to one victim.
    DestinationSourcePort,
    /// Source, protocol and destination port (TCP and UDP): one source opening many flows to
    /// one service.
    SourceDestinationPort,
}

impl CreatorKey {
    pub const ALL: [Self; 4] = [
        Self::Source,
        Self::Destination,
        Self::DestinationSourcePort,
        Self::SourceDestinationPort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
            Self::DestinationSourcePort => "destination_source_port",
            Self::SourceDestinationPort => "source_destination_port",
        }
    }
}

/// One creator: an address, with the protocol and port for the keys that have them, and the
/// new flows it created in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorCount {
    pub address: IpAddr,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub new_flows: u64,
}

/// The largest creators of one key in one window, biggest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorList {
    pub key: CreatorKey,
    pub top: Vec<CreatorCount>,
    /// New flows of elements outside `top`.
    pub rest: u64,
    /// New flows no element could count because the set was full: the kernel counted them in
    /// the set's overflow counter instead.
    pub uncounted: u64,
}

/// Who conntrack turned away in one window: per source, packets that could start a flow (a TCP
/// SYN without ACK, or any packet of another protocol) counted before conntrack, less those
/// counted again right after it. While the table is full these are the flows that found no
/// room; the kernel counts the same drops in its `drop` statistic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnedAway {
    /// Sources by packets dropped, biggest first.
    pub top: Vec<TurnedAwaySource>,
    /// Dropped packets of sources outside `top`.
    pub rest: u64,
    /// Dropped packets of sources the attempts set could not hold (it was full).
    pub uncounted: u64,
    /// conntrack's own `drop` statistic over the watched seconds of the same window (while the
    /// helper counted who is turned away), summed over CPUs: the figure the per-source counts
    /// should add up to.
    pub kernel_drops: u64,
    /// The same statistic's drops in the window's other seconds, while nobody was counted per
    /// source (the table was not near full when they began).
    #[serde(default)]
    pub unwatched_drops: u64,
}

impl TurnedAway {
    /// Every dropped packet the sets saw: listed, rest and uncounted.
    pub fn counted(&self) -> u64 {
        self.top.iter().map(|c| c.packets).sum::<u64>() + self.rest + self.uncounted
    }
}

/// One source conntrack turned away, and how many of its packets (a flow's first packet, or
/// its retries: each one found no room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnedAwaySource {
    pub address: IpAddr,
    pub packets: u64,
}

/// Every key's creators over one trailing window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorWindow {
    /// The window asked for, one of [`WINDOWS_SECS`].
    pub seconds: u32,
    /// The seconds the counts really cover: less than `seconds` while the helper has not yet
    /// counted for that long (after a start), so a rate is `new_flows / covered_secs`.
    pub covered_secs: u32,
    /// Every new flow in the window (TCP, UDP and the rest, IPv4 and IPv6), from the table's
    /// total counter.
    pub new_flows: u64,
    /// One list per [`CreatorKey`], in [`CreatorKey::ALL`] order.
    pub lists: Vec<CreatorList>,
    /// Who conntrack refused in the window (its table full).
    pub turned_away: TurnedAway,
}

/// The helper's answer: how it counts and what it counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Creators {
    /// Whether the counting table is in place; `false` when nftables refused it (then the
    /// windows are empty and `problem` says why).
    pub counting: bool,
    pub problem: Option<String>,
    /// The most elements each counting set holds before new keys go uncounted.
    pub set_capacity: u32,
    /// How often the helper reads the counters, in seconds.
    pub sample_secs: u32,
    /// Unix seconds of the newest reading.
    pub sampled_at: u64,
    /// One per [`WINDOWS_SECS`], shortest first.
    pub windows: Vec<CreatorWindow>,
    /// Unix seconds since when who is turned away is counted; `None` while it is not (the
    /// table is not near full: conntrack refuses nothing then, and the per-packet counting
    /// would cost for nothing). Refusals while not watching are in the kernel's drops only.
    #[serde(default)]
    pub watching_since: Option<u64>,
    /// The fill, in percent of `nf_conntrack_max`, from which it is counted; 0: always.
    #[serde(default)]
    pub watch_from_percent: u8,
}

impl Creators {
    /// The window of `seconds`, if the answer has it.
    pub fn window(&self, seconds: u32) -> Option<&CreatorWindow> {
        self.windows.iter().find(|w| w.seconds == seconds)
    }
}

impl CreatorWindow {
    /// The list of `key`, if the window has it.
    pub fn list(&self, key: CreatorKey) -> Option<&CreatorList> {
        self.lists.iter().find(|l| l.key == key)
    }

    /// New flows per second over the window, rounded down; 0 before anything was covered.
    pub fn per_second(&self, new_flows: u64) -> u64 {
        new_flows
            .checked_div(u64::from(self.covered_secs))
            .unwrap_or(0)
    }
}
