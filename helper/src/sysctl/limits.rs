//! Refusals weighed against the live kernel: the neighbour thresholds' order and floors, and a
//! full conntrack table's share of the host's RAM.

use ctguard_protocol::{HelperError, SysctlKey};

/// The neighbour thresholds, in the order their values must keep.
pub const NEIGH_THRESHOLDS: [SysctlKey; 3] = [
    SysctlKey::NeighGcThresh1,
    SysctlKey::NeighGcThresh2,
    SysctlKey::NeighGcThresh3,
];

/// The most of the host's RAM a full table may take. The Tuning page recommends at most 1/16
/// (app/src/operators/tuning/advice.rs); this is the hard stop above the advice, so a mistyped
/// limit cannot let the table push the host into the OOM killer.
pub const TABLE_SHARE_PERCENT: u64 = 25;
/// The extension area an entry carries as soon as NAT, accounting, timestamps, labels, helpers or
/// an event listener are in use: at least one kmalloc-128 object (`nf_ct_ext_add`). Whether it is
/// in use cannot be known ahead of the traffic, so it is always counted.
pub const EXTENSION_BYTES: u64 = 128;
/// One `struct nf_conn` slab object on 6.x x86-64, when /proc/slabinfo does not list the cache.
pub const FALLBACK_OBJECT_BYTES: u64 = 256;
/// One `hlist_nulls_head` per bucket, allocated whatever the count (`nf_ct_alloc_hashtable`).
pub const BUCKET_BYTES: u64 = 8;

/// `gc_thresh1 <= gc_thresh2 <= gc_thresh3` with `key` at `value` and the others at their live
/// values (`live`). `neigh_alloc` and `neigh_forced_gc` assume this order: a gc_thresh2 above
/// gc_thresh3 makes the hard cap the only limit, a gc_thresh1 above gc_thresh2 stops the periodic
/// GC while forced GCs run.
pub fn check_neigh_order(
    key: SysctlKey,
    value: u64,
    mut live: impl FnMut(SysctlKey) -> Result<u64, HelperError>,
) -> Result<(), HelperError> {
    let Some(position) = NEIGH_THRESHOLDS.iter().position(|&k| k == key) else {
        return Ok(());
    };
    for (other_position, &other) in NEIGH_THRESHOLDS.iter().enumerate() {
        if other_position == position {
            continue;
        }
        let other_value = live(other)?;
        let in_order = if other_position < position {
            other_value <= value
        } else {
            value <= other_value
        };
        if !in_order {
            return Err(HelperError::NeighThresholdOrder {
                key,
                value,
                other,
                other_value,
            });
        }
    }
    Ok(())
}

/// What the table costs and holds now, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableNow {
    pub max: u64,
    pub buckets: u64,
    /// The `nf_conntrack` slab object, if /proc/slabinfo lists it.
    pub object_bytes: Option<u64>,
    /// MemTotal.
    pub memory_bytes: u64,
}

impl TableNow {
    fn entry_bytes(&self) -> u64 {
        self.object_bytes.unwrap_or(FALLBACK_OBJECT_BYTES) + EXTENSION_BYTES
    }

    fn full_table_bytes(&self, max: u64, buckets: u64) -> u64 {
        max.saturating_mul(self.entry_bytes())
            .saturating_add(buckets.saturating_mul(BUCKET_BYTES))
    }
}

/// Refuses a limit (or a bucket count, already rounded as the kernel keeps it) whose full table
/// would take more than [`TABLE_SHARE_PERCENT`] of RAM. A write that does not raise the value
/// is never refused: it cannot cost more than the table may already take, and putting back a
/// value read earlier must always work.
pub fn check_table_memory(key: SysctlKey, value: u64, now: &TableNow) -> Result<(), HelperError> {
    let (max, buckets) = match key {
        SysctlKey::NfConntrackMax if value > now.max => (value, now.buckets),
        SysctlKey::NfConntrackBuckets if value > now.buckets => (now.max, value),
        _ => return Ok(()),
    };
    let table_bytes = now.full_table_bytes(max, buckets);
    let allowed = now.memory_bytes / 100 * TABLE_SHARE_PERCENT;
    if table_bytes <= allowed {
        return Ok(());
    }
    Err(HelperError::ConntrackTableTooLarge {
        key,
        value,
        max,
        buckets,
        entry_bytes: now.entry_bytes(),
        table_bytes,
        share_percent: TABLE_SHARE_PERCENT,
        memory_bytes: now.memory_bytes,
    })
}

/// MemTotal in bytes from /proc/meminfo's text.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kib.checked_mul(1_024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn live(values: [u64; 3]) -> impl FnMut(SysctlKey) -> Result<u64, HelperError> {
        move |key| {
            let at = NEIGH_THRESHOLDS
                .iter()
                .position(|&k| k == key)
                .expect("a threshold");
            Ok(values[at])
        }
    }

    #[test]
    fn a_threshold_out_of_order_with_the_live_ones_is_refused_naming_the_other() {
        let defaults = [128, 512, 1_024];
        assert!(check_neigh_order(SysctlKey::NeighGcThresh2, 1_024, live(defaults)).is_ok());
        assert!(check_neigh_order(SysctlKey::NeighGcThresh1, 512, live(defaults)).is_ok());
        assert_eq!(
            check_neigh_order(SysctlKey::NeighGcThresh1, 513, live(defaults)),
            Err(HelperError::NeighThresholdOrder {
                key: SysctlKey::NeighGcThresh1,
                value: 513,
                other: SysctlKey::NeighGcThresh2,
                other_value: 512,
            })
        );
        assert_eq!(
            check_neigh_order(SysctlKey::NeighGcThresh2, 2_048, live(defaults)),
            Err(HelperError::NeighThresholdOrder {
                key: SysctlKey::NeighGcThresh2,
                value: 2_048,
                other: SysctlKey::NeighGcThresh3,
                other_value: 1_024,
            })
        );
        assert!(matches!(
            check_neigh_order(SysctlKey::NeighGcThresh3, 100, live(defaults)),
            Err(HelperError::NeighThresholdOrder {
                other: SysctlKey::NeighGcThresh1,
                ..
            })
        ));
        // Other keys are not thresholds.
        assert!(check_neigh_order(SysctlKey::NfConntrackMax, 1, live(defaults)).is_ok());
    }

    fn host(memory_bytes: u64) -> TableNow {
        TableNow {
            max: 262_144,
            buckets: 262_144,
            object_bytes: Some(256),
            memory_bytes,
        }
    }

    #[test]
    fn a_limit_whose_full_table_passes_a_quarter_of_ram_is_refused_with_its_cost() {
        // 1 GiB: a quarter is 268,435,400 B (rounded down by 1 %); 262,144 buckets take 2 MiB,
        // each entry 256 + 128 B.
        let now = host(GIB);
        let fits = (GIB / 100 * 25 - 262_144 * 8) / 384;
        assert!(check_table_memory(SysctlKey::NfConntrackMax, fits, &now).is_ok());
        let error =
            check_table_memory(SysctlKey::NfConntrackMax, fits + 1, &now).expect_err("refused");
        assert_eq!(
            error,
            HelperError::ConntrackTableTooLarge {
                key: SysctlKey::NfConntrackMax,
                value: fits + 1,
                max: fits + 1,
                buckets: 262_144,
                entry_bytes: 384,
                table_bytes: (fits + 1) * 384 + 262_144 * 8,
                share_percent: 25,
                memory_bytes: GIB,
            }
        );
        let text = error.to_string();
        assert!(text.contains("384 B") && text.contains("25 %"), "{text}");
    }

    #[test]
    fn lowering_is_never_refused_and_buckets_count_too() {
        // A host whose limit is already far past the share (set outside the panel).
        let mut now = host(GIB);
        now.max = 16_777_216;
        assert!(check_table_memory(SysctlKey::NfConntrackMax, 16_777_216, &now).is_ok());
        assert!(check_table_memory(SysctlKey::NfConntrackMax, 8_000_000, &now).is_ok());
        assert!(check_table_memory(SysctlKey::NfConntrackMax, 16_777_217, &now).is_err());
        assert!(matches!(
            check_table_memory(SysctlKey::NfConntrackBuckets, 300_000, &now),
            Err(HelperError::ConntrackTableTooLarge {
                key: SysctlKey::NfConntrackBuckets,
                ..
            })
        ));
        // Without slabinfo the object is taken as 256 B, plus the extension.
        now = host(GIB);
        now.object_bytes = None;
        let Err(HelperError::ConntrackTableTooLarge { entry_bytes, .. }) =
            check_table_memory(SysctlKey::NfConntrackMax, 16_777_216, &now)
        else {
            panic!("16 M entries do not fit a quarter of 1 GiB");
        };
        assert_eq!(entry_bytes, 384);
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        assert_eq!(
            mem_total_bytes("MemFree: 1 kB\nMemTotal:        8048576 kB\n"),
            Some(8_048_576 * 1_024)
        );
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }
}
