//! What the helper reports in answer to `status`: the connection-tracking table (fill, limits,
//! statistics, memory) and, beside it, the helper's own state (blocks in force, journal failures).

use serde::{Deserialize, Serialize};

/// One reading of the conntrack table of the watched network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackStatus {
    /// Entries in the table now (`nf_conntrack_count`).
    pub count: u64,
    /// The limit; new flows are dropped or evict others beyond it (`nf_conntrack_max`).
    pub max: u64,
    /// Hash table buckets (`nf_conntrack_buckets`).
    pub buckets: u64,
    /// The per-CPU statistics (`conntrack -S`: over ctnetlink, or `/proc/net/stat/nf_conntrack`),
    /// summed over CPUs.
    pub stats: ConntrackStats,
    /// Bytes of kernel memory one entry costs: the `nf_conntrack` slab object size, when the helper
    /// could read `/proc/slabinfo`.
    pub entry_bytes: Option<u64>,
    /// Physical memory of the host (`MemTotal`), to put the table's cost in proportion.
    pub host_memory_bytes: u64,
}

impl ConntrackStatus {
    /// The table's fill in percent of its limit (0 when the limit is unknown).
    pub fn fill_percent(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.count as f64 * 100.0 / self.max as f64
        }
    }

    /// Kernel memory the entries occupy now.
    pub fn table_bytes(&self) -> Option<u64> {
        self.entry_bytes.map(|size| size.saturating_mul(self.count))
    }

    /// Kernel memory a table filled to its limit would occupy.
    pub fn full_table_bytes(&self) -> Option<u64> {
        self.entry_bytes.map(|size| size.saturating_mul(self.max))
    }
}

/// The helper's own state, answered with every `status` beside the table's [`ConntrackStatus`].
///
/// In `status` because the server's sampler already asks for it once per interval: monitoring gets
/// these numbers at no extra request, and both are a counter and a count the helper keeps in
/// memory, read without waiting for a change in progress. A sibling struct rather than more fields
/// of [`ConntrackStatus`]: that one is a reading of the kernel (procfs fills it, the history keeps
/// it), this one comes from the helper's blocks and journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperHealth {
    /// Blocks in force now: held by the helper and not yet expired.
    pub blocks_active: u64,
    /// Journal appends that failed since the helper started. After the first failure the journal
    /// refuses every append until a restart, so every change is refused too; each refusal counts.
    /// Anything above zero means the helper can change nothing.
    pub journal_write_failures: u64,
}

/// The per-CPU counters `conntrack -S` prints (IPCTNL_MSG_CT_GET_STATS_CPU over ctnetlink, or
/// `/proc/net/stat/nf_conntrack` where the kernel has it), summed over CPUs. They only grow (until
/// a reboot or a wrap), so rates come from differences between readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackStats {
    pub found: u64,
    pub invalid: u64,
    pub insert: u64,
    /// Inserts lost to races between CPUs.
    pub insert_failed: u64,
    /// Packets dropped because the table was full: the `table full, dropping packet` events.
    pub drop: u64,
    /// Entries evicted to make room for new ones.
    pub early_drop: u64,
    pub search_restart: u64,
    /// Packets a protocol tracker's error check rejected (`error`; `icmp_error` in procfs).
    /// Missing from older helpers' answers, read as 0 (so are the two below).
    #[serde(default)]
    pub error: u64,
    /// Insert races resolved by reusing the entry already there (`clash_resolve`; `clashres` in
    /// procfs).
    #[serde(default)]
    pub clash_resolve: u64,
    /// Inserts refused because a hash chain was too long: too few buckets (`chaintoolong`;
    /// `chainlength` in procfs).
    #[serde(default)]
    pub chaintoolong: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(count: u64, max: u64, entry_bytes: Option<u64>) -> ConntrackStatus {
        ConntrackStatus {
            count,
            max,
            buckets: 1024,
            stats: ConntrackStats::default(),
            entry_bytes,
            host_memory_bytes: 1 << 30,
        }
    }

    #[test]
    fn statistics_without_the_newer_counters_read_as_zero() {
        // What a helper answered before `error`, `clash_resolve` and `chaintoolong` were sent.
        let older = r#"{"found":1,"invalid":2,"insert":3,"insert_failed":4,"drop":5,"early_drop":6,"search_restart":7}"#;
        let stats: ConntrackStats = serde_json::from_str(older).expect("reads");
        assert_eq!(stats.drop, 5);
        assert_eq!(
            (stats.error, stats.clash_resolve, stats.chaintoolong),
            (0, 0, 0)
        );
    }

    #[test]
    fn fill_percent_is_count_over_max() {
        assert_eq!(status(65_536, 262_144, None).fill_percent(), 25.0);
        assert_eq!(status(5, 0, None).fill_percent(), 0.0);
    }

    #[test]
    fn a_full_default_table_costs_sixteen_mebibytes_not_a_gigabyte() {
        // The seed document claims 65,536 entries need about 1 GB; at 256 bytes each it is 16 MiB.
        let full = status(65_536, 65_536, Some(256));
        assert_eq!(full.full_table_bytes(), Some(16 * 1024 * 1024));
        assert_eq!(full.table_bytes(), Some(16 * 1024 * 1024));
        assert_eq!(status(1, 1, None).table_bytes(), None);
    }
}
