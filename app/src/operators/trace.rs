//! Traces of new flows (issue 15, the seed's LOG step done right): for 1 to 10 minutes the
//! helper counts the new flows matching a filter (a block target's terms) by source, destination
//! and destination port, in kernel counters; nothing goes to syslog. Starting and stopping one
//! are confirmed changes ([`crate::operators::operations::Operation::StartTrace`] and `StopTrace`); the
//! reading is for viewers too, polled every [`POLL_SECS`] while a trace runs.

use ctguard_protocol::trace::{TraceCount, TraceReading};
use serde::{Deserialize, Serialize};

use crate::format;

/// How often the page asks for the running trace's counts.
pub const POLL_SECS: u32 = 2;

/// The durations the form offers.
pub const DURATIONS: [(u32, &str); 4] = [
    (60, "1 minute"),
    (120, "2 minutes"),
    (300, "5 minutes"),
    (600, "10 minutes"),
];

/// What the page shows of the trace: the helper's reading (running, ended, or none since it
/// started), or that it does not trace at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceView {
    Reading {
        reading: Option<Box<TraceReading>>,
        running: bool,
        /// The server's clock, Unix seconds, for the time left.
        now: u64,
    },
    /// The helper does not trace (one from before protocol version 9).
    Unsupported,
}

impl TraceView {
    /// Whether the page should ask again in [`POLL_SECS`].
    pub fn running(&self) -> bool {
        matches!(self, Self::Reading { running: true, .. })
    }
}

/// Time left in words: `4 min 10 s left`, `12 s left`.
pub fn time_left(now: u64, ends_at: u64) -> String {
    let left = ends_at.saturating_sub(now);
    if left >= 60 {
        format!("{} min {} s left", left / 60, left % 60)
    } else {
        format!("{left} s left")
    }
}

/// `9,000 new flows`, `1 new flow`.
pub fn new_flows(count: u64) -> String {
    match count {
        1 => "1 new flow".to_owned(),
        n => format!("{} new flows", format::thousands(n)),
    }
}

/// A row's label: the address, or `udp port 53` for a destination port.
pub fn label(count: &TraceCount) -> String {
    match (count.address, count.protocol, count.port) {
        (Some(address), _, _) => address.to_string(),
        (None, Some(protocol), Some(port)) => format!("{} port {port}", protocol.as_str()),
        (None, Some(protocol), None) => protocol.as_str().to_owned(),
        (None, None, Some(port)) => format!("port {port}"),
        (None, None, None) => "other".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use ctguard_protocol::Protocol;

    use super::*;

    #[test]
    fn the_time_left_and_the_rows_read_as_words() {
        assert_eq!(time_left(100, 350), "4 min 10 s left");
        assert_eq!(time_left(100, 112), "12 s left");
        assert_eq!(time_left(400, 350), "0 s left");
        assert_eq!(new_flows(1), "1 new flow");
        assert_eq!(new_flows(9_000), "9,000 new flows");
        let row = |address, protocol, port| TraceCount {
            address,
            protocol,
            port,
            new_flows: 1,
        };
        assert_eq!(
            label(&row(
                Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66))),
                None,
                None
            )),
            "203.0.113.66"
        );
        assert_eq!(
            label(&row(None, Some(Protocol::Udp), Some(53))),
            "udp port 53"
        );
    }
}
