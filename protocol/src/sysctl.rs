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

sysctl_keys! {
    /// The table's limit.
    NfConntrackMax = "net.netfilter.nf_conntrack_max", Entries, Global, 1_024 ..= 16_777_216;
    /// The hash table's size (the module's `hashsize`).
    NfConntrackBuckets = "net.netfilter.nf_conntrack_buckets", Buckets, Global, 1_024 ..= 4_194_304;
    /// 432000 (5 days) by default; the seed's 180 is 3 minutes.
    TcpTimeoutEstablished = "net.netfilter.nf_conntrack_tcp_timeout_established", Seconds, PerNamespace, 60 ..= 432_000;
    TcpTimeoutSynSent = "net.netfilter.nf_conntrack_tcp_timeout_syn_sent", Seconds, PerNamespace, 5 ..= 600;
    TcpTimeoutSynRecv = "net.netfilter.nf_conntrack_tcp_timeout_syn_recv", Seconds, PerNamespace, 5 ..= 600;
    TcpTimeoutFinWait = "net.netfilter.nf_conntrack_tcp_timeout_fin_wait", Seconds, PerNamespace, 5 ..= 600;
    TcpTimeoutCloseWait = "net.netfilter.nf_conntrack_tcp_timeout_close_wait", Seconds, PerNamespace, 5 ..= 600;
    TcpTimeoutTimeWait = "net.netfilter.nf_conntrack_tcp_timeout_time_wait", Seconds, PerNamespace, 5 ..= 600;
    TcpTimeoutUnacknowledged = "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged", Seconds, PerNamespace, 5 ..= 600;
    UdpTimeout = "net.netfilter.nf_conntrack_udp_timeout", Seconds, PerNamespace, 1 ..= 3_600;
    UdpTimeoutStream = "net.netfilter.nf_conntrack_udp_timeout_stream", Seconds, PerNamespace, 1 ..= 3_600;
    IcmpTimeout = "net.netfilter.nf_conntrack_icmp_timeout", Seconds, PerNamespace, 1 ..= 600;
    GenericTimeout = "net.netfilter.nf_conntrack_generic_timeout", Seconds, PerNamespace, 1 ..= 3_600;
    NeighGcThresh1 = "net.ipv4.neigh.default.gc_thresh1", Entries, Global, 0 ..= 1_048_576;
    NeighGcThresh2 = "net.ipv4.neigh.default.gc_thresh2", Entries, Global, 1 ..= 1_048_576;
    NeighGcThresh3 = "net.ipv4.neigh.default.gc_thresh3", Entries, Global, 1 ..= 1_048_576;
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
