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
    /// summed over CPUs: what `conntrack -S` adds up to. A sum of 32-bit counters, so it falls
    /// when one CPU's counter wraps; differences are taken per CPU from [`Self::per_cpu`].
    pub stats: ConntrackStats,
    /// Bytes of kernel memory one entry costs as the kernel spends it: the `nf_conntrack` slab
    /// object plus, when something on this host needs it, the extension area
    /// ([`EntryMemory::extension_bytes`]); `None` when `/proc/slabinfo` could not be read. The
    /// 8 bytes per hash bucket come on top, once for the whole hash ([`Self::hash_bytes`]).
    pub entry_bytes: Option<u64>,
    /// Physical memory of the host (`MemTotal`), to put the table's cost in proportion.
    pub host_memory_bytes: u64,
    /// The same statistics per CPU, as the kernel keeps them (32-bit counters). Empty from a
    /// helper that did not send them.
    #[serde(default)]
    pub per_cpu: Vec<CpuStats>,
    /// Which table the counters belong to: a change means they restarted from zero.
    #[serde(default)]
    pub identity: Option<TableIdentity>,
    /// How [`Self::entry_bytes`] was made up, and what the slab holds now.
    #[serde(default)]
    pub memory: EntryMemory,
}

/// One CPU's statistics (`conntrack -S` prints a line per CPU). Each kernel counter is an
/// `unsigned int` (`struct ip_conntrack_stat`): it wraps at 2³² and its increase between two
/// readings is their difference modulo 2³².
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuStats {
    /// The CPU number (ctnetlink's `res_id`), or the row's position in `/proc/net/stat`.
    pub cpu: u32,
    pub stats: ConntrackStats,
}

/// The identity of the table whose counters were read: they count from zero when the network
/// namespace is created and when the host boots, and only then. Two readings with the same
/// identity are of one run of the same counters, however much one of them seems to fall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableIdentity {
    /// The inode of the watched network namespace (`/proc/thread-self/ns/net`): what the kernel
    /// prints as `netns N` and `ip netns identify` compares.
    pub netns_inode: u64,
    /// `/proc/sys/kernel/random/boot_id`: new at every boot (an inode may be reused after one).
    pub boot_id: String,
}

/// What one entry costs and what the `nf_conntrack` slab holds, as the helper read them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryMemory {
    /// The `nf_conntrack` slab object (`objsize` in `/proc/slabinfo`).
    pub object_bytes: Option<u64>,
    /// The extension area each entry carries when one of [`Self::extensions`] is in use: at least
    /// one `kmalloc-128` object (`NF_CT_EXT_PREALLOC`), 0 when none is.
    pub extension_bytes: u64,
    /// Why entries carry an extension area (empty: they do not).
    pub extensions: Vec<EntryExtension>,
    /// The `nf_conntrack` slab now. One cache for the whole host: every namespace's entries.
    pub slab: Option<SlabUsage>,
}

/// A reason for entries to carry an extension area (`nf_ct_ext_add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryExtension {
    /// `nf_conntrack_acct = 1`: byte and packet counters on every entry.
    Accounting,
    /// `nf_conntrack_timestamp = 1`: start and stop times on every entry.
    Timestamps,
    /// `nf_conntrack_events = 1`: the event cache on every entry, listener or not.
    EventsAlways,
    /// `nf_conntrack_events = 2` (the default) and a conntrack event listener in this namespace
    /// (`conntrack -E`, an exporter): the event cache on every new entry.
    EventListener,
    /// NAT chains in this namespace (masquerade and helpers' sequence adjustment need the area).
    Nat,
    /// `nf_conntrack_helper = 1` (kernels before 6.0): helpers assigned to entries by port.
    AutomaticHelpers,
    /// Helpers the ruleset assigns (nftables `ct helper` objects, `ct helper set`): the entries
    /// they are set on carry the helper's extension.
    RuleHelpers,
}

impl EntryExtension {
    /// What the dashboard says about it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Accounting => "accounting (nf_conntrack_acct)",
            Self::Timestamps => "timestamps (nf_conntrack_timestamp)",
            Self::EventsAlways => "events on every entry (nf_conntrack_events = 1)",
            Self::EventListener => "a conntrack event listener",
            Self::Nat => "NAT",
            Self::AutomaticHelpers => "automatic helpers (nf_conntrack_helper)",
            Self::RuleHelpers => {
                "helpers the ruleset assigns (ct helper: only on the entries they are set on)"
            }
        }
    }
}

/// One line of `/proc/slabinfo` for the `nf_conntrack` cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlabUsage {
    /// Objects in use: entries of every namespace, including those being created or freed.
    pub active_objects: u64,
    /// Objects the cache's slabs hold, used or free.
    pub total_objects: u64,
    pub object_bytes: u64,
    /// The cache's pages: slabs × pages per slab × page size.
    pub bytes: u64,
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

    /// Kernel memory this namespace's entries occupy now: count × [`Self::entry_bytes`].
    pub fn table_bytes(&self) -> Option<u64> {
        self.entry_bytes.map(|size| size.saturating_mul(self.count))
    }

    /// The hash table: 8 bytes per bucket, allocated whatever the count (one hash for the host).
    pub fn hash_bytes(&self) -> u64 {
        self.buckets.saturating_mul(BUCKET_BYTES)
    }

    /// Kernel memory this namespace's table would occupy filled to its limit, with the hash.
    /// Each namespace may hold up to the limit: N namespaces may take N times the entries.
    pub fn full_table_bytes(&self) -> Option<u64> {
        self.entry_bytes.map(|size| {
            size.saturating_mul(self.max)
                .saturating_add(self.hash_bytes())
        })
    }

    /// Kernel memory conntrack entries occupy now by the slab: its objects in use (every
    /// namespace's entries) with their extension areas, and the hash.
    pub fn slab_in_use_bytes(&self) -> Option<u64> {
        let slab = self.memory.slab?;
        let per_object = slab
            .object_bytes
            .saturating_add(self.memory.extension_bytes);
        Some(
            slab.active_objects
                .saturating_mul(per_object)
                .saturating_add(self.hash_bytes()),
        )
    }
}

/// Bytes per hash bucket: one pointer (`struct hlist_nulls_head`) on 64-bit hosts.
pub const BUCKET_BYTES: u64 = 8;

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
    /// Entries that could not be inserted (`__nf_conntrack_confirm`): clashes between CPUs it
    /// could not resolve, and chains past the kernel's bound (also counted in `chaintoolong`).
    pub insert_failed: u64,
    /// Packets conntrack dropped: mostly for a full table (no entry could be allocated), also
    /// for clashes it could not resolve (see `insert_failed`) and trackers' drops.
    pub drop: u64,
    /// Entries evicted to make room for new ones (never ASSURED ones).
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
            per_cpu: Vec::new(),
            identity: None,
            memory: EntryMemory::default(),
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
        assert_eq!(full.table_bytes(), Some(16 * 1024 * 1024));
        // The 1,024 buckets' 8 KiB come on top, whatever the count.
        assert_eq!(full.full_table_bytes(), Some(16 * 1024 * 1024 + 8 * 1024));
        assert_eq!(status(1, 1, None).table_bytes(), None);
    }

    #[test]
    fn in_use_comes_from_the_slab_with_the_extension_areas_and_the_hash() {
        let mut reading = status(100, 65_536, Some(384));
        assert_eq!(reading.slab_in_use_bytes(), None, "no slab read");
        reading.memory = EntryMemory {
            object_bytes: Some(256),
            extension_bytes: 128,
            extensions: vec![EntryExtension::Nat],
            slab: Some(SlabUsage {
                // Another namespace's entries are in the same cache.
                active_objects: 1_000,
                total_objects: 1_024,
                object_bytes: 256,
                bytes: 1_024 * 256,
            }),
        };
        assert_eq!(reading.slab_in_use_bytes(), Some(1_000 * 384 + 1_024 * 8));
    }

    #[test]
    fn a_reading_without_the_newer_fields_still_reads() {
        // What a helper sent before per-CPU values, identity and memory were added.
        let older = r#"{"count":1,"max":2,"buckets":3,"stats":{"found":0,"invalid":0,"insert":0,"insert_failed":0,"drop":0,"early_drop":0,"search_restart":0},"entry_bytes":256,"host_memory_bytes":4}"#;
        let status: ConntrackStatus = serde_json::from_str(older).expect("reads");
        assert!(status.per_cpu.is_empty());
        assert_eq!(status.identity, None);
        assert_eq!(status.memory, EntryMemory::default());
    }
}
