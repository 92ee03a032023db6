//! Reading the conntrack table's state: count, limit and buckets from `/proc/sys`, the per-CPU
//! statistics over ctnetlink or from `/proc/net/stat` (`--stats-source`) with the table's identity
//! (namespace inode, boot id), and memory: the slab, the extension areas, MemTotal.
//! Paths are resolved under a root (`/proc` in production) so the parsers are tested against
//! fixture trees; `/proc/net`, `/proc/sys/net` and netlink sockets show the network namespace of
//! the reading thread, which is the one the helper watches.

pub mod extensions;
pub mod identity;
pub mod kmsg;
pub mod slab;
pub mod stat;

use std::path::{Path, PathBuf};

use ctguard_protocol::{
    ConntrackStatus, HelperError,
    status::{CpuStats, EntryMemory},
};
use procfs::{FromRead, Meminfo};

use crate::ctnetlink::{self, CtnetlinkError};

/// What a failed statistics read over ctnetlink names in place of a path.
const STATS_OVER_NETLINK: &str = "ctnetlink IPCTNL_MSG_CT_GET_STATS_CPU";

/// A failed read of one kernel interface.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct KernelError {
    pub path: PathBuf,
    pub detail: String,
}

impl KernelError {
    pub(crate) fn at(path: &Path, detail: impl ToString) -> Self {
        Self {
            path: path.to_owned(),
            detail: detail.to_string(),
        }
    }
}

impl From<KernelError> for HelperError {
    fn from(error: KernelError) -> Self {
        HelperError::KernelRead {
            path: error.path.display().to_string(),
            detail: error.detail,
        }
    }
}

/// Where the per-CPU statistics come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsSource {
    /// ctnetlink first; `/proc/net/stat/nf_conntrack` only when ctnetlink fails.
    #[default]
    Auto,
    /// ctnetlink only (what `conntrack -S` reads), never procfs.
    Netlink,
    /// `/proc/net/stat/nf_conntrack` only: kernels with CONFIG_NF_CONNTRACK_PROCFS.
    Procfs,
}

/// The per-CPU statistics over ctnetlink; a function so tests can stand in for the kernel.
type NetlinkStats = fn() -> Result<Vec<CpuStats>, CtnetlinkError>;

/// The procfs tree the helper reads, and where its statistics come from.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
    stats_source: StatsSource,
    netlink_stats: NetlinkStats,
    nat: extensions::NatProbe,
}

impl Default for ProcFs {
    /// `/proc`, the statistics over ctnetlink first, NAT chains asked of `nft`: the production
    /// reading.
    fn default() -> Self {
        Self {
            nat: extensions::NatProbe::nft(),
            ..Self::at("/proc").with_stats_source(StatsSource::Auto)
        }
    }
}

impl ProcFs {
    /// A tree under `root` (a fixture in tests) with its statistics from that tree alone: ctnetlink
    /// and `nft` would answer from the live kernel, not from the fixture.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            stats_source: StatsSource::Procfs,
            netlink_stats: ctnetlink::statistics,
            nat: extensions::NatProbe::TablesOnly,
        }
    }

    pub fn with_stats_source(mut self, source: StatsSource) -> Self {
        self.stats_source = source;
        self
    }

    #[cfg(test)]
    fn with_netlink_stats(mut self, read: NetlinkStats) -> Self {
        self.netlink_stats = read;
        self
    }

    /// One consistent-enough reading of the table: each file is read once, count first.
    pub fn status(&self) -> Result<ConntrackStatus, KernelError> {
        let count = self.read_u64("sys/net/netfilter/nf_conntrack_count")?;
        let max = self.read_u64("sys/net/netfilter/nf_conntrack_max")?;
        let buckets = self.read_u64("sys/net/netfilter/nf_conntrack_buckets")?;
        let per_cpu = self.stats()?;
        // Without an identity every fall of a counter looks like a wrap: said, not fatal.
        let identity = identity::read_identity(&self.root)
            .inspect_err(|error| tracing::debug!(%error, "table identity unreadable"))
            .ok();
        let memory = self.memory();
        let meminfo_path = self.root.join("meminfo");
        let meminfo =
            Meminfo::from_file(&meminfo_path).map_err(|e| KernelError::at(&meminfo_path, e))?;
        Ok(ConntrackStatus {
            count,
            max,
            buckets,
            stats: stat::sum(&per_cpu),
            entry_bytes: memory
                .object_bytes
                .map(|object| object + memory.extension_bytes),
            host_memory_bytes: meminfo.mem_total,
            per_cpu,
            identity,
            memory,
        })
    }

    /// The per-CPU statistics from the configured source. `Auto` falls back to procfs when
    /// ctnetlink fails (and says both reasons when procfs fails too); without
    /// CONFIG_NF_CONNTRACK_PROCFS there is no file, and ctnetlink alone answers.
    fn stats(&self) -> Result<Vec<CpuStats>, KernelError> {
        let over_netlink = || {
            (self.netlink_stats)().map_err(|e| KernelError::at(Path::new(STATS_OVER_NETLINK), e))
        };
        match self.stats_source {
            StatsSource::Netlink => over_netlink(),
            StatsSource::Procfs => self.procfs_stats(),
            StatsSource::Auto => over_netlink().or_else(|netlink| {
                tracing::debug!(error = %netlink, "statistics over ctnetlink failed; reading procfs");
                self.procfs_stats().map_err(|mut procfs| {
                    procfs.detail = format!("{}; and {netlink}", procfs.detail);
                    procfs
                })
            }),
        }
    }

    fn procfs_stats(&self) -> Result<Vec<CpuStats>, KernelError> {
        let path = self.root.join("net/stat/nf_conntrack");
        stat::parse(&read(&path)?).map_err(|e| KernelError::at(&path, e))
    }

    /// What one entry costs and what the slab holds. Optional parts: slabinfo is root-only and
    /// absent on some kernels; the table's cost is then shown as unknown rather than guessed.
    fn memory(&self) -> EntryMemory {
        let path = self.root.join("slabinfo");
        let slab =
            match read(&path).map(|text| slab::usage(&text, "nf_conntrack", procfs::page_size())) {
                Ok(Some(usage)) => Some(usage),
                Ok(None) => {
                    tracing::debug!(path = %path.display(), "no nf_conntrack slab cache listed");
                    None
                }
                Err(error) => {
                    tracing::debug!(%error, "slabinfo unreadable");
                    None
                }
            };
        let extensions = extensions::detect(&self.root, &self.nat);
        EntryMemory {
            object_bytes: slab.map(|usage| usage.object_bytes),
            extension_bytes: if extensions.is_empty() {
                0
            } else {
                extensions::EXTENSION_BYTES
            },
            extensions,
            slab,
        }
    }

    fn read_u64(&self, relative: &str) -> Result<u64, KernelError> {
        let path = self.root.join(relative);
        let text = read(&path)?;
        text.trim()
            .parse()
            .map_err(|e| KernelError::at(&path, format!("not a number ({e}): {:?}", text.trim())))
    }
}

fn read(path: &Path) -> Result<String, KernelError> {
    std::fs::read_to_string(path).map_err(|e| KernelError::at(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every field procfs requires, as a 6.x kernel lists them; only MemTotal matters here.
    const MEMINFO: &str = "MemTotal:        8048576 kB\n\
MemFree:        0 kB\n\
MemAvailable:   0 kB\n\
Buffers:        0 kB\n\
Cached:         0 kB\n\
SwapCached:     0 kB\n\
Active:         0 kB\n\
Inactive:       0 kB\n\
Active(anon):   0 kB\n\
Inactive(anon): 0 kB\n\
Active(file):   0 kB\n\
Inactive(file): 0 kB\n\
Unevictable:    0 kB\n\
Mlocked:        0 kB\n\
SwapTotal:      0 kB\n\
SwapFree:       0 kB\n\
Zswap:          0 kB\n\
Zswapped:       0 kB\n\
Dirty:          0 kB\n\
Writeback:      0 kB\n\
AnonPages:      0 kB\n\
Mapped:         0 kB\n\
Shmem:          0 kB\n\
KReclaimable:   0 kB\n\
Slab:           0 kB\n\
SReclaimable:   0 kB\n\
SUnreclaim:     0 kB\n\
KernelStack:    0 kB\n\
PageTables:     0 kB\n\
SecPageTables:  0 kB\n\
NFS_Unstable:   0 kB\n\
Bounce:         0 kB\n\
WritebackTmp:   0 kB\n\
CommitLimit:    0 kB\n\
Committed_AS:   0 kB\n\
VmallocTotal:   0 kB\n\
VmallocUsed:    0 kB\n\
VmallocChunk:   0 kB\n\
Percpu:         0 kB\n\
AnonHugePages:  0 kB\n\
ShmemHugePages: 0 kB\n\
ShmemPmdMapped: 0 kB\n\
FileHugePages:  0 kB\n\
FilePmdMapped:  0 kB\n\
Balloon:        0 kB\n\
HugePages_Total: 0\n\
HugePages_Free: 0\n\
HugePages_Rsvd: 0\n\
HugePages_Surp: 0\n\
Hugepagesize:   0 kB\n\
Hugetlb:        0 kB\n\
DirectMap4k:    0 kB\n\
DirectMap2M:    0 kB\n\
DirectMap1G:    0 kB\n";

    /// A procfs tree with every file `status` reads (also for the handler's tests).
    pub(crate) fn fixture(slabinfo: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |relative: &str, text: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("sys/net/netfilter/nf_conntrack_count", "65536\n");
        write("sys/net/netfilter/nf_conntrack_max", "65536\n");
        write("sys/net/netfilter/nf_conntrack_buckets", "16384\n");
        write("net/stat/nf_conntrack", stat::tests::TWO_CPUS);
        write("meminfo", MEMINFO);
        identity::tests::write(dir.path());
        if let Some(text) = slabinfo {
            write("slabinfo", text);
        }
        dir
    }

    #[test]
    fn status_combines_every_file() {
        let dir = fixture(Some(slab::tests::SLABINFO));
        let status = ProcFs::at(dir.path()).status().expect("reads");
        assert_eq!(status.count, 65_536);
        assert_eq!(status.max, 65_536);
        assert_eq!(status.buckets, 16_384);
        assert_eq!(status.stats.drop, 0x96e);
        assert_eq!(status.per_cpu.len(), 2, "each CPU kept");
        assert_eq!(status.per_cpu[1].stats.drop, 0x6e);
        assert_eq!(
            status.identity.map(|identity| identity.boot_id),
            Some(identity::tests::BOOT.to_owned())
        );
        assert_eq!(status.entry_bytes, Some(256), "no extension area in use");
        let slab = status.memory.slab.expect("slab read");
        assert_eq!(slab.active_objects, 65_536);
        assert_eq!(status.host_memory_bytes, 8_048_576 * 1024);
    }

    #[test]
    fn an_extension_area_in_use_adds_to_the_entry() {
        let dir = fixture(Some(slab::tests::SLABINFO));
        std::fs::write(
            dir.path().join("sys/net/netfilter/nf_conntrack_acct"),
            "1\n",
        )
        .expect("write");
        let status = ProcFs::at(dir.path()).status().expect("reads");
        assert_eq!(status.entry_bytes, Some(256 + 128));
        assert_eq!(status.memory.object_bytes, Some(256));
        assert_eq!(
            status.memory.extensions,
            vec![ctguard_protocol::status::EntryExtension::Accounting]
        );
    }

    #[test]
    fn an_unreadable_identity_leaves_it_unknown_not_the_status() {
        let dir = fixture(None);
        std::fs::remove_file(dir.path().join("sys/kernel/random/boot_id")).expect("rm");
        let status = ProcFs::at(dir.path()).status().expect("reads");
        assert_eq!(status.identity, None);
    }

    #[test]
    fn missing_slabinfo_leaves_the_entry_size_unknown() {
        let dir = fixture(None);
        assert_eq!(
            ProcFs::at(dir.path()).status().expect("reads").entry_bytes,
            None
        );
    }

    fn statistics_from_a_kernel_without_procfs() -> Result<Vec<CpuStats>, CtnetlinkError> {
        Ok(vec![CpuStats {
            cpu: 0,
            stats: ctguard_protocol::ConntrackStats {
                invalid: 42,
                chaintoolong: 3,
                ..Default::default()
            },
        }])
    }

    fn a_kernel_refusing_ctnetlink() -> Result<Vec<CpuStats>, CtnetlinkError> {
        Err(CtnetlinkError::Kernel(1))
    }

    /// A tree as a kernel built without CONFIG_NF_CONNTRACK_PROCFS shows it: no net/stat file.
    fn fixture_without_procfs_statistics() -> tempfile::TempDir {
        let dir = fixture(None);
        std::fs::remove_file(dir.path().join("net/stat/nf_conntrack")).expect("rm");
        dir
    }

    #[test]
    fn without_the_procfs_statistics_auto_reads_them_over_ctnetlink() {
        let dir = fixture_without_procfs_statistics();
        let status = ProcFs::at(dir.path())
            .with_stats_source(StatsSource::Auto)
            .with_netlink_stats(statistics_from_a_kernel_without_procfs)
            .status()
            .expect("the status does not depend on the procfs file");
        assert_eq!(status.stats.invalid, 42);
        assert_eq!(status.stats.chaintoolong, 3);
        assert_eq!(status.count, 65_536, "the rest of the reading is there");
    }

    #[test]
    fn auto_prefers_ctnetlink_and_falls_back_to_procfs() {
        let dir = fixture(None);
        let auto = ProcFs::at(dir.path()).with_stats_source(StatsSource::Auto);
        let preferred = auto
            .clone()
            .with_netlink_stats(statistics_from_a_kernel_without_procfs)
            .status()
            .expect("reads");
        assert_eq!(
            preferred.stats.invalid, 42,
            "ctnetlink's answer, not the file's"
        );
        let fallback = auto
            .with_netlink_stats(a_kernel_refusing_ctnetlink)
            .status()
            .expect("reads the file");
        assert_eq!(fallback.stats.drop, 0x96e, "the file's answer");
    }

    #[test]
    fn each_forced_source_reads_only_itself() {
        let dir = fixture(None);
        let netlink = ProcFs::at(dir.path())
            .with_stats_source(StatsSource::Netlink)
            .with_netlink_stats(a_kernel_refusing_ctnetlink)
            .status()
            .expect_err("ctnetlink refused, and procfs is not asked");
        assert_eq!(netlink.path, Path::new(STATS_OVER_NETLINK));
        assert!(netlink.detail.contains("os error 1"), "{netlink}");
        let dir = fixture_without_procfs_statistics();
        let procfs = ProcFs::at(dir.path())
            .with_stats_source(StatsSource::Procfs)
            .with_netlink_stats(statistics_from_a_kernel_without_procfs)
            .status()
            .expect_err("no file, and ctnetlink is not asked");
        assert!(procfs.path.ends_with("net/stat/nf_conntrack"), "{procfs}");
    }

    #[test]
    fn when_both_sources_fail_the_error_gives_both_reasons() {
        let dir = fixture_without_procfs_statistics();
        let error = ProcFs::at(dir.path())
            .with_stats_source(StatsSource::Auto)
            .with_netlink_stats(a_kernel_refusing_ctnetlink)
            .status()
            .expect_err("neither answers");
        assert!(error.path.ends_with("net/stat/nf_conntrack"), "{error}");
        assert!(error.detail.contains("refused"), "{error}");
    }

    #[test]
    fn a_missing_counter_names_the_file() {
        let dir = fixture(None);
        std::fs::remove_file(dir.path().join("sys/net/netfilter/nf_conntrack_max")).expect("rm");
        let error = ProcFs::at(dir.path()).status().expect_err("max is missing");
        assert!(error.path.ends_with("nf_conntrack_max"), "{error}");
    }

    #[test]
    fn a_garbled_counter_is_an_error_not_a_zero() {
        let dir = fixture(None);
        std::fs::write(
            dir.path().join("sys/net/netfilter/nf_conntrack_count"),
            "lots",
        )
        .expect("write");
        let error = ProcFs::at(dir.path()).status().expect_err("garbled");
        assert!(error.detail.contains("not a number"), "{error}");
    }
}
