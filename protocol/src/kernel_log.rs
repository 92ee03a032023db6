//! What the helper reports from the kernel log: how often conntrack said a table was full, and
//! whose table it was.
//!
//! The kernel prints `nf_conntrack: table full, dropping packet` for the initial namespace and,
//! since 6.17, `nf_conntrack: table full in netns N, dropping packet` for any other (N: its nsfs
//! inode, `net->ns.inum`). Older kernels print the first form for every namespace: such a line
//! cannot be told apart, and is counted as unattributed rather than guessed to be ours.

use serde::{Deserialize, Serialize};

/// Counts of kernel log messages within a recent window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelLogSummary {
    /// How far back the counts go, in seconds before the helper read the log.
    pub window_secs: u64,
    /// The watched table's `table full` messages in the window: those naming its namespace, and
    /// the plain form when the watched namespace is the initial one.
    pub table_full: u64,
    /// `table full` messages of other namespaces' tables: naming another namespace, or the plain
    /// form (the initial namespace's) on a kernel that names the others. Missing from older
    /// helpers' answers, read as 0 (so are the fields below).
    #[serde(default)]
    pub other_tables: u64,
    /// Plain `table full` messages whose table cannot be told: a kernel before 6.17 prints the
    /// same line for every namespace, and the watched one is not the initial one.
    #[serde(default)]
    pub unattributed: u64,
    /// The watched namespace's inode the messages were attributed by (what `netns N` names);
    /// `None` when it could not be read (then nothing counts as the watched table's by inode).
    #[serde(default)]
    pub netns_inode: Option<u64>,
    /// Network messages of every kind the kernel's rate limit held back in the window
    /// (`net_ratelimit: N callbacks suppressed`): every `net_ratelimit()` caller shares one
    /// limit, so `table full` lines may be among them, and so may any other subsystem's.
    pub suppressed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_helpers_answer_still_reads() {
        let older = r#"{"window_secs":600,"table_full":3,"suppressed":41}"#;
        let log: KernelLogSummary = serde_json::from_str(older).expect("reads");
        assert_eq!(log.table_full, 3);
        assert_eq!((log.other_tables, log.unattributed), (0, 0));
        assert_eq!(log.netns_inode, None);
    }
}
