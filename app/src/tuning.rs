//! The Tuning page's arithmetic, pure and unit-tested: what each conntrack setting should be on
//! this host and why (table size against RAM, buckets per entry, the established-TCP timeout
//! against RFC 5382's floor for NAT), and seconds as people read them.

use ctguard_protocol::{ConntrackStatus, SysctlKey, SysctlUnit};

/// The share of RAM a full table may take: 1/16 (6.25 %).
pub const MEMORY_SHARE_DIVISOR: u64 = 16;
/// Entries per hash bucket at a full table: 4 keeps lookups short and the buckets cheap.
pub const ENTRIES_PER_BUCKET: u64 = 4;
/// RFC 5382 REQ-5: a NAT must not expire an established TCP connection idle for less than
/// 2 hours 4 minutes.
pub const RFC5382_ESTABLISHED_FLOOR_SECS: u64 = 2 * 3600 + 4 * 60;

/// A suggestion for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    pub key: SysctlKey,
    pub current: u64,
    /// `None`: no opinion (the kernel's default is fine for most hosts).
    pub recommended: Option<u64>,
    pub reasoning: String,
}

impl Recommendation {
    /// Whether applying the recommendation would change anything.
    pub fn differs(&self) -> bool {
        self.recommended.is_some_and(|value| value != self.current)
    }
}

/// Seconds as people read them: `180` → `3 min`, `7440` → `2 h 4 min`, `432000` → `5 d`.
pub fn duration(seconds: u64) -> String {
    const PARTS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "min"), (1, "s")];
    if seconds == 0 {
        return "0 s".into();
    }
    let mut rest = seconds;
    let mut out = Vec::new();
    for (size, name) in PARTS {
        if rest >= size {
            out.push(format!("{} {name}", rest / size));
            rest %= size;
        }
    }
    out.join(" ")
}

/// A value with its unit: entries and buckets as counts, seconds as a duration.
pub fn with_unit(key: SysctlKey, value: u64) -> String {
    match key.unit() {
        SysctlUnit::Entries => format!("{} entries", crate::format::thousands(value)),
        SysctlUnit::Buckets => format!("{} buckets", crate::format::thousands(value)),
        SysctlUnit::Seconds => format!("{value} s ({})", duration(value)),
    }
}

/// The kernel's own default (Linux 6.x), or `None` where it depends on the host's RAM (the table
/// limit and the bucket count are sized from memory when nf_conntrack loads).
pub fn kernel_default(key: SysctlKey) -> Option<u64> {
    match key {
        SysctlKey::NfConntrackMax | SysctlKey::NfConntrackBuckets => None,
        SysctlKey::TcpTimeoutEstablished => Some(432_000),
        SysctlKey::TcpTimeoutSynSent => Some(120),
        SysctlKey::TcpTimeoutSynRecv => Some(60),
        SysctlKey::TcpTimeoutFinWait => Some(120),
        SysctlKey::TcpTimeoutCloseWait => Some(60),
        SysctlKey::TcpTimeoutTimeWait => Some(120),
        SysctlKey::TcpTimeoutUnacknowledged => Some(300),
        SysctlKey::UdpTimeout => Some(30),
        SysctlKey::UdpTimeoutStream => Some(120),
        SysctlKey::IcmpTimeout => Some(30),
        SysctlKey::GenericTimeout => Some(600),
        SysctlKey::NeighGcThresh1 => Some(128),
        SysctlKey::NeighGcThresh2 => Some(512),
        SysctlKey::NeighGcThresh3 => Some(1_024),
        SysctlKey::NeighGcStaleTime => Some(60),
    }
}

fn clamp(key: SysctlKey, value: u64) -> u64 {
    let (min, max) = key.bounds();
    value.clamp(min, max)
}

/// The table limit whose full table takes 1/16 of RAM, rounded down to a multiple of 1024; `None`
/// without the entry size.
pub fn recommended_max(status: &ConntrackStatus) -> Option<u64> {
    let entry = status.entry_bytes.filter(|&bytes| bytes > 0)?;
    let by_memory = status.host_memory_bytes / MEMORY_SHARE_DIVISOR / entry;
    Some(clamp(SysctlKey::NfConntrackMax, by_memory / 1024 * 1024))
}

/// Buckets for `max` entries: `max / 4` rounded up to a power of two.
pub fn recommended_buckets(max: u64) -> u64 {
    let wanted = max.div_ceil(ENTRIES_PER_BUCKET).max(1);
    clamp(
        SysctlKey::NfConntrackBuckets,
        wanted.checked_next_power_of_two().unwrap_or(wanted),
    )
}

/// One recommendation per key in `values` (the helper's current values), in the same order.
pub fn recommend(status: &ConntrackStatus, values: &[(SysctlKey, u64)]) -> Vec<Recommendation> {
    values
        .iter()
        .map(|&(key, current)| recommend_one(status, key, current))
        .collect()
}

fn recommend_one(status: &ConntrackStatus, key: SysctlKey, current: u64) -> Recommendation {
    let (recommended, reasoning) = match key {
        SysctlKey::NfConntrackMax => match (recommended_max(status), status.entry_bytes) {
            (Some(max), Some(entry)) => (
                Some(max),
                format!(
                    "Each entry costs {} of kernel memory; {} entries fill {} of {} RAM (1/{MEMORY_SHARE_DIVISOR}). \
                     Now a full table would take {}.",
                    crate::format::bytes(entry),
                    crate::format::thousands(max),
                    crate::format::bytes(max.saturating_mul(entry)),
                    crate::format::bytes(status.host_memory_bytes),
                    crate::format::bytes(current.saturating_mul(entry)),
                ),
            ),
            _ => (
                None,
                "The entry size is unknown (the helper could not read /proc/slabinfo).".into(),
            ),
        },
        SysctlKey::NfConntrackBuckets => {
            let max = status.max.max(1);
            (
                Some(recommended_buckets(max)),
                format!(
                    "About {ENTRIES_PER_BUCKET} entries per bucket at a full table keeps lookups short; \
                     now {:.1} per bucket (limit {} / {} buckets).",
                    max as f64 / current.max(1) as f64,
                    crate::format::thousands(max),
                    crate::format::thousands(current),
                ),
            )
        }
        SysctlKey::TcpTimeoutEstablished => {
            let floor = RFC5382_ESTABLISHED_FLOOR_SECS;
            let verdict = if current < floor {
                "Below that, idle connections through NAT (SSH, databases) break."
            } else {
                "Shorter frees the entries of dead connections sooner; not below the floor."
            };
            (
                Some(floor),
                format!(
                    "RFC 5382 asks NATs to keep idle established TCP for at least {} ({floor} s); \
                     the kernel default is {}. {verdict}",
                    duration(floor),
                    duration(432_000),
                ),
            )
        }
        _ => (None, "The kernel's default suits most hosts.".into()),
    };
    Recommendation {
        key,
        current,
        recommended,
        reasoning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(entry_bytes: Option<u64>, host_memory_bytes: u64, max: u64) -> ConntrackStatus {
        ConntrackStatus {
            count: 0,
            max,
            buckets: 0,
            stats: Default::default(),
            entry_bytes,
            host_memory_bytes,
        }
    }

    #[test]
    fn seconds_read_as_durations() {
        assert_eq!(
            duration(180),
            "3 min",
            "180 s is three minutes, not three hours"
        );
        assert_eq!(duration(7440), "2 h 4 min");
        assert_eq!(duration(432_000), "5 d");
        assert_eq!(duration(90), "1 min 30 s");
        assert_eq!(duration(0), "0 s");
    }

    #[test]
    fn the_limit_follows_ram_and_the_entry_size() {
        // 4 GiB, 320-byte entries: 4 GiB / 16 / 320 = 838,860.8 → 838,656 (multiple of 1024).
        let host = status(Some(320), 4 << 30, 262_144);
        assert_eq!(recommended_max(&host), Some(838_656));
        // Tiny hosts get the allowlist's minimum, huge ones its maximum.
        assert_eq!(recommended_max(&status(Some(320), 1 << 20, 0)), Some(1_024));
        assert_eq!(
            recommended_max(&status(Some(64), 1 << 50, 0)),
            Some(16_777_216)
        );
        assert_eq!(recommended_max(&status(None, 4 << 30, 0)), None);
    }

    #[test]
    fn buckets_are_a_quarter_of_the_limit_as_a_power_of_two() {
        assert_eq!(recommended_buckets(262_144), 65_536);
        assert_eq!(recommended_buckets(838_656), 262_144);
        assert_eq!(recommended_buckets(10), 1_024, "the allowlist's minimum");
    }

    #[test]
    fn kernel_defaults_are_within_the_allowlisted_bounds() {
        for &key in SysctlKey::ALL {
            if let Some(default) = kernel_default(key) {
                assert!(key.check(default).is_ok(), "{key} default {default}");
            }
        }
        assert_eq!(
            kernel_default(SysctlKey::NfConntrackMax),
            None,
            "sized from RAM"
        );
    }

    #[test]
    fn established_tcp_is_not_recommended_below_rfc_5382() {
        let host = status(Some(320), 4 << 30, 262_144);
        let short = recommend(&host, &[(SysctlKey::TcpTimeoutEstablished, 180)]);
        assert_eq!(short[0].recommended, Some(7440));
        assert!(short[0].differs());
        assert!(short[0].reasoning.contains("2 h 4 min"));
        assert!(short[0].reasoning.contains("break"));
        let other = recommend(&host, &[(SysctlKey::UdpTimeout, 30)]);
        assert_eq!(other[0].recommended, None);
        assert!(!other[0].differs());
        assert_eq!(
            with_unit(SysctlKey::TcpTimeoutEstablished, 180),
            "180 s (3 min)"
        );
    }
}
