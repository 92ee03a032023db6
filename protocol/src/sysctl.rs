//! The sysctl allowlist: every key the helper may write, with its bounds, its unit and whether it
//! is global (writable only from the initial network namespace) or per network namespace.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SysctlUnit {
    /// Conntrack or neighbour-table entries.
    Entries,
    /// Hash-table buckets.
    Buckets,
    Seconds,
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SysctlScope {
    /// One value for the whole host; the kernel lets only the initial namespace write it
    /// (`nf_conntrack_max` is mode 0444 in a child namespace). The `net.ipv4.neigh.default.*`
    /// keys are global too: `neigh/default/` exists only in the initial namespace (a child has
    /// per-interface entries only), and the gc thresholds belong to the one ARP table.
    Global,
    /// Each network namespace has its own value; the helper writes the watched namespace's.
    PerNamespace,
}

macro_rules! sysctl_keys {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $unit:ident, $scope:ident, $min:literal ..= $max:literal; )*) => {
        /// An allowlisted sysctl. Serialised as its dotted name, e.g. `net.netfilter.nf_conntrack_max`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum SysctlKey {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl SysctlKey {
            pub const ALL: &'static [SysctlKey] = &[$(SysctlKey::$variant),*];

            /// The dotted name `sysctl(8)` uses.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
            pub fn unit(self) -> SysctlUnit {
                match self { $(Self::$variant => SysctlUnit::$unit,)* }
            }
            pub fn scope(self) -> SysctlScope {
                match self { $(Self::$variant => SysctlScope::$scope,)* }
            }
            /// The inclusive range of values the helper accepts.
            pub fn bounds(self) -> (u64, u64) {
                match self { $(Self::$variant => ($min, $max),)* }
            }
        }
    };
}

// Bounds: wide enough that every value a real agent sets (kube-proxy: close_wait 3600,
// established 86400, max 32768 per core) and every kernel default is accepted, so putting back a
// value the helper read never fails; the table's memory is bounded by the limit and the RAM
// check (helper/src/sysctl/limits.rs), not by short timeouts. The neighbour floors are the kernel's
// own defaults for `arp_tbl` (net/ipv4/arp.c): see each key.
sysctl_keys! {
    /// The table's limit. Also refused by the helper when a full table would pass a share of RAM.
    NfConntrackMax = "net.netfilter.nf_conntrack_max", Entries, Global, 1_024 ..= 16_777_216;
    /// The hash table's size (the module's `hashsize`); the kernel rounds it up to a page of
    /// bucket heads (`nf_ct_alloc_hashtable`: 512 on 64-bit with 4 KiB pages).
    NfConntrackBuckets = "net.netfilter.nf_conntrack_buckets", Buckets, Global, 1_024 ..= 4_194_304;
    /// 432000 (5 days) by default; kube-proxy sets 86400; up to 30 days. At least a minute: an
    /// idle established connection forgotten sooner loses its NAT mapping.
    TcpTimeoutEstablished = "net.netfilter.nf_conntrack_tcp_timeout_established", Seconds, PerNamespace, 60 ..= 2_592_000;
    TcpTimeoutSynSent = "net.netfilter.nf_conntrack_tcp_timeout_syn_sent", Seconds, PerNamespace, 1 ..= 86_400;
    TcpTimeoutSynRecv = "net.netfilter.nf_conntrack_tcp_timeout_syn_recv", Seconds, PerNamespace, 1 ..= 86_400;
    TcpTimeoutFinWait = "net.netfilter.nf_conntrack_tcp_timeout_fin_wait", Seconds, PerNamespace, 1 ..= 86_400;
    /// 60 by default; kube-proxy sets 3600.
    TcpTimeoutCloseWait = "net.netfilter.nf_conntrack_tcp_timeout_close_wait", Seconds, PerNamespace, 1 ..= 86_400;
    TcpTimeoutTimeWait = "net.netfilter.nf_conntrack_tcp_timeout_time_wait", Seconds, PerNamespace, 1 ..= 86_400;
    TcpTimeoutUnacknowledged = "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged", Seconds, PerNamespace, 1 ..= 86_400;
    UdpTimeout = "net.netfilter.nf_conntrack_udp_timeout", Seconds, PerNamespace, 1 ..= 86_400;
    UdpTimeoutStream = "net.netfilter.nf_conntrack_udp_timeout_stream", Seconds, PerNamespace, 1 ..= 86_400;
    IcmpTimeout = "net.netfilter.nf_conntrack_icmp_timeout", Seconds, PerNamespace, 1 ..= 86_400;
    GenericTimeout = "net.netfilter.nf_conntrack_generic_timeout", Seconds, PerNamespace, 1 ..= 86_400;
    /// Below this many entries the periodic GC reaps nothing (`neigh_periodic_work`). No floor:
    /// a lower value only lets stale entries go sooner, it never refuses one. At most gc_thresh2.
    NeighGcThresh1 = "net.ipv4.neigh.default.gc_thresh1", Entries, Global, 0 ..= 1_048_576;
    /// Above this many entries `neigh_alloc` runs a forced GC (at most every 5 s) that evicts every
    /// unreferenced entry idle for 5 s. At least the kernel's 512: below it a host on a busy link
    /// keeps forgetting its neighbours (its gateway too) and resolves them again. At most gc_thresh3.
    NeighGcThresh2 = "net.ipv4.neigh.default.gc_thresh2", Entries, Global, 512 ..= 1_048_576;
    /// The hard cap: at this many entries, when the forced GC frees none, `neigh_alloc` fails and
    /// the host cannot resolve a new neighbour ("neighbour table overflow"). At least the kernel's
    /// 1024, the table every host is sized for.
    NeighGcThresh3 = "net.ipv4.neigh.default.gc_thresh3", Entries, Global, 1_024 ..= 1_048_576;
    /// The default for interfaces created later (each interface copies it).
    NeighGcStaleTime = "net.ipv4.neigh.default.gc_stale_time", Seconds, Global, 1 ..= 86_400;
}

impl SysctlKey {
    /// The file under `/proc/sys`: the dotted name with dots as slashes.
    pub fn proc_path(self) -> String {
        self.name().replace('.', "/")
    }

    /// Whether `value` is within the key's bounds.
    pub fn check(self, value: u64) -> Result<(), SysctlBoundsError> {
        let (min, max) = self.bounds();
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(SysctlBoundsError {
                key: self,
                value,
                min,
                max,
            })
        }
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How nf_conntrack is in the kernel, which decides how the hash size persists across a reboot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConntrackModule {
    /// A loadable module: `options nf_conntrack hashsize=N` in modprobe.d sizes it at load.
    Loadable,
    /// Built into the kernel: a modprobe.d option has no effect; `nf_conntrack.hashsize=N` on
    /// the kernel command line sizes it at boot.
    BuiltIn,
    /// Not loaded (or /sys not readable): either may apply.
    #[default]
    Unknown,
}

/// One allowlisted setting as the helper reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlReading {
    pub key: SysctlKey,
    /// The live value, or `None` where this kernel has no such file (e.g. the neighbour keys in a
    /// container without the initial namespace).
    pub value: Option<u64>,
    /// The value in the helper's persisted sysctl.d file, applied at boot; `None` if not there.
    pub persisted: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} must be within {min}..={max}, not {value}")]
pub struct SysctlBoundsError {
    pub key: SysctlKey,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_travel_as_their_dotted_names_and_unknown_ones_are_refused() {
        assert_eq!(
            serde_json::to_string(&SysctlKey::NfConntrackMax).expect("json"),
            r#""net.netfilter.nf_conntrack_max""#
        );
        assert!(serde_json::from_str::<SysctlKey>(r#""kernel.core_pattern""#).is_err());
        for key in SysctlKey::ALL {
            let json = serde_json::to_string(key).expect("json");
            assert_eq!(
                serde_json::from_str::<SysctlKey>(&json).expect("back"),
                *key
            );
            let (min, max) = key.bounds();
            assert!(min <= max, "{key}");
            assert!(key.check(min).is_ok() && key.check(max).is_ok());
            assert!(key.check(max + 1).is_err());
        }
    }

    /// Values real agents and the kernel set: putting any of them back must never be refused.
    #[test]
    fn values_agents_and_the_kernel_set_are_within_bounds() {
        let set_in_the_wild = [
            // kube-proxy (pkg/proxy/conntrack): close_wait 1 h, established 1 day, 32768 per core.
            (SysctlKey::TcpTimeoutCloseWait, 3_600),
            (SysctlKey::TcpTimeoutEstablished, 86_400),
            (SysctlKey::NfConntrackMax, 131_072),
            (SysctlKey::NfConntrackMax, 32_768 * 256),
            // The kernel's 6.x defaults.
            (SysctlKey::TcpTimeoutEstablished, 432_000),
            (SysctlKey::TcpTimeoutSynSent, 120),
            (SysctlKey::TcpTimeoutSynRecv, 60),
            (SysctlKey::TcpTimeoutFinWait, 120),
            (SysctlKey::TcpTimeoutCloseWait, 60),
            (SysctlKey::TcpTimeoutTimeWait, 120),
            (SysctlKey::TcpTimeoutUnacknowledged, 300),
            (SysctlKey::UdpTimeout, 30),
            (SysctlKey::UdpTimeoutStream, 120),
            (SysctlKey::UdpTimeoutStream, 180),
            (SysctlKey::IcmpTimeout, 30),
            (SysctlKey::GenericTimeout, 600),
            (SysctlKey::NeighGcThresh1, 128),
            (SysctlKey::NeighGcThresh2, 512),
            (SysctlKey::NeighGcThresh3, 1_024),
            (SysctlKey::NeighGcStaleTime, 60),
            (SysctlKey::NfConntrackBuckets, 262_144),
            // Large Kubernetes nodes on one L2 segment.
            (SysctlKey::NeighGcThresh1, 80_000),
            (SysctlKey::NeighGcThresh2, 90_000),
            (SysctlKey::NeighGcThresh3, 100_000),
        ];
        for (key, value) in set_in_the_wild {
            assert!(key.check(value).is_ok(), "{key} = {value}");
        }
    }

    #[test]
    fn neighbour_floors_keep_the_kernel_defaults() {
        assert!(SysctlKey::NeighGcThresh3.check(1_023).is_err());
        assert!(SysctlKey::NeighGcThresh2.check(511).is_err());
        assert!(SysctlKey::NeighGcThresh1.check(0).is_ok());
    }

    #[test]
    fn scopes_and_paths_match_the_kernel() {
        assert_eq!(SysctlKey::NfConntrackMax.scope(), SysctlScope::Global);
        assert_eq!(
            SysctlKey::TcpTimeoutEstablished.scope(),
            SysctlScope::PerNamespace
        );
        assert_eq!(
            SysctlKey::NeighGcThresh3.proc_path(),
            "net/ipv4/neigh/default/gc_thresh3"
        );
        assert_eq!(SysctlKey::TcpTimeoutEstablished.unit(), SysctlUnit::Seconds);
        for key in SysctlKey::ALL {
            if key.name().starts_with("net.ipv4.neigh.default.") {
                assert_eq!(
                    key.scope(),
                    SysctlScope::Global,
                    "{key}: initial namespace only"
                );
            }
        }
    }
}
