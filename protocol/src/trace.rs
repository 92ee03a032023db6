//! A trace: the seed's LOG rule done right. For a bounded time the helper counts the new flows
//! that match a filter (an address or network, on the source or destination side, with an
//! optional protocol and port) by source, destination and destination port, in kernel
//! counters; nothing goes to syslog, and the kernel stops matching at the deadline by itself.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::target::{BlockTarget, Protocol};

/// The longest trace, in seconds.
pub const MAX_TRACE_SECS: u32 = 600;
/// The most rows per list of a reading.
pub const MAX_TRACE_ROWS: usize = 20;

/// A running (or just ended) trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceInfo {
    /// What it matches, in the block targets' terms: `192.0.2.0/24`, `to 198.51.100.10 udp
    /// port 53`, ...
    pub filter: BlockTarget,
    /// Unix seconds.
    pub started_at: u64,
    pub ends_at: u64,
}

/// One row of a reading: a source or destination address, or a destination port with its
/// protocol, and the new flows it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceCount {
    pub address: Option<IpAddr>,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub new_flows: u64,
}

/// What the trace counted so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceReading {
    pub info: TraceInfo,
    /// Every matching new flow.
    pub new_flows: u64,
    /// Largest first, at most [`MAX_TRACE_ROWS`] each.
    pub sources: Vec<TraceCount>,
    pub destinations: Vec<TraceCount>,
    pub destination_ports: Vec<TraceCount>,
    /// Matching flows whose source the full sources set could not hold.
    pub uncounted_sources: u64,
}

/// Why a trace ended, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceEnd {
    /// A user stopped it.
    Stopped,
    /// Its time was up.
    Expired,
    /// The helper found a trace table that an earlier run left (it stopped without removing
    /// it) and removed it at start.
    LeftByEarlierRun,
}
