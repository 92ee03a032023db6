//! The per-CPU statistics over ctnetlink: the IPCTNL_MSG_CT_GET_STATS_CPU dump that
//! `conntrack -S` prints, one message per possible CPU (`ctnetlink_ct_stat_cpu_dump`), summed
//! here. Unlike `/proc/net/stat/nf_conntrack` it exists on kernels built without
//! CONFIG_NF_CONNTRACK_PROCFS.

use ctguard_protocol::ConntrackStats;

use super::parse::{attributes, be32};

/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET_STATS_CPU: the request and each answer.
pub const CT_GET_STATS_CPU: u16 = (1 << 8) | 4;

// enum ctattr_stats_cpu (uapi nfnetlink_conntrack.h); SEARCHED, NEW, IGNORE, DELETE and
// DELETE_LIST are no longer sent.
const CTA_STATS_FOUND: u16 = 2;
const CTA_STATS_INVALID: u16 = 4;
const CTA_STATS_INSERT: u16 = 8;
const CTA_STATS_INSERT_FAILED: u16 = 9;
const CTA_STATS_DROP: u16 = 10;
const CTA_STATS_EARLY_DROP: u16 = 11;
const CTA_STATS_ERROR: u16 = 12;
const CTA_STATS_SEARCH_RESTART: u16 = 13;
const CTA_STATS_CLASH_RESOLVE: u16 = 14;
const CTA_STATS_CHAIN_TOOLONG: u16 = 15;

/// Adds one CPU's message (nfgenmsg, whose res_id is the CPU number, then one be32 attribute per
/// counter; `ctnetlink_ct_stat_cpu_fill_info`) to `totals`. Counters this kernel does not send
/// stay as they were. Returns the CPU number, or `None` for a payload too short to be one.
pub fn add_cpu(totals: &mut ConntrackStats, payload: &[u8]) -> Option<u16> {
    let cpu = u16::from_be_bytes(payload.get(2..4)?.try_into().ok()?);
    for (kind, value) in attributes(payload.get(4..)?) {
        let Some(value) = be32(value) else { continue };
        let counter = match kind {
            CTA_STATS_FOUND => &mut totals.found,
            CTA_STATS_INVALID => &mut totals.invalid,
            CTA_STATS_INSERT => &mut totals.insert,
            CTA_STATS_INSERT_FAILED => &mut totals.insert_failed,
            CTA_STATS_DROP => &mut totals.drop,
            CTA_STATS_EARLY_DROP => &mut totals.early_drop,
            CTA_STATS_ERROR => &mut totals.error,
            CTA_STATS_SEARCH_RESTART => &mut totals.search_restart,
            CTA_STATS_CLASH_RESOLVE => &mut totals.clash_resolve,
            CTA_STATS_CHAIN_TOOLONG => &mut totals.chaintoolong,
            _ => continue,
        };
        *counter = counter.saturating_add(u64::from(value));
    }
    Some(cpu)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ctnetlink::parse::tests::attr;

    /// One CPU's answer as `ctnetlink_ct_stat_cpu_fill_info` lays it out.
    pub(crate) fn cpu_payload(cpu: u16, counters: &[(u16, u32)]) -> Vec<u8> {
        let mut payload = vec![0, 0];
        payload.extend_from_slice(&cpu.to_be_bytes());
        for (kind, value) in counters {
            payload.extend(attr(*kind, &value.to_be_bytes()));
        }
        payload
    }

    #[test]
    fn sums_every_counter_over_cpus() {
        let mut totals = ConntrackStats::default();
        let all: Vec<(u16, u32)> = (1..=15).map(|kind| (kind, u32::from(kind) * 10)).collect();
        assert_eq!(add_cpu(&mut totals, &cpu_payload(0, &all)), Some(0));
        assert_eq!(
            add_cpu(&mut totals, &cpu_payload(3, &[(CTA_STATS_DROP, u32::MAX)])),
            Some(3)
        );
        assert_eq!(
            totals,
            ConntrackStats {
                found: 20,
                invalid: 40,
                insert: 80,
                insert_failed: 90,
                drop: 100 + u64::from(u32::MAX),
                early_drop: 110,
                error: 120,
                search_restart: 130,
                clash_resolve: 140,
                chaintoolong: 150,
            },
            "the attributes no longer used (searched, new, ignore, delete) are not counted"
        );
    }

    #[test]
    fn an_older_kernel_without_the_newer_counters_leaves_them_zero() {
        let mut totals = ConntrackStats::default();
        add_cpu(&mut totals, &cpu_payload(1, &[(CTA_STATS_FOUND, 5)])).expect("a cpu");
        assert_eq!(totals.found, 5);
        assert_eq!(totals.clash_resolve, 0);
        assert_eq!(totals.chaintoolong, 0);
    }

    #[test]
    fn short_or_garbled_payloads_never_panic() {
        let mut totals = ConntrackStats::default();
        assert_eq!(add_cpu(&mut totals, &[0, 0]), None);
        let whole = cpu_payload(2, &[(CTA_STATS_INVALID, 7), (CTA_STATS_DROP, 9)]);
        for end in 0..whole.len() {
            let _ = add_cpu(&mut totals, &whole[..end]);
        }
        let _ = add_cpu(&mut totals, &[0xff; 40]);
    }
}
