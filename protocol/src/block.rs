//! What the helper reports about a block it holds.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::target::{BlockTarget, ShortText};

/// A block the helper holds: in its state file and, while it lasts, in `table inet ctguard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveBlock {
    pub target: BlockTarget,
    pub reason: ShortText,
    /// Who asked (the panel's user name), as the server reported it.
    pub actor: ShortText,
    /// The client address of the user who asked.
    pub requested_by: IpAddr,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    pub expires_unix: u64,
    /// The journal record of the block's intent.
    pub journal_seq: u64,
    /// Packets its drop rule has matched, when the helper could read the kernel's counters. Live
    /// data for `list_blocks`, never part of the helper's saved state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_dropped: Option<u64>,
}
