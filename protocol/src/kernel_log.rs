//! What the helper reports from the kernel log: how often conntrack said the table was full.

use serde::{Deserialize, Serialize};

/// Counts of kernel log messages within a recent window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelLogSummary {
    /// How far back the counts go, in seconds before the helper read the log.
    pub window_secs: u64,
    /// `nf_conntrack: table full, dropping packet` messages in the window.
    pub table_full: u64,
    /// Messages the kernel's rate limiter held back in the window (`N callbacks suppressed`,
    /// `printk: N messages suppressed`): while the table is full most of its messages are among
    /// them, though other subsystems' suppressed messages count here too.
    pub suppressed: u64,
}
