//! The per-CPU statistics over ctnetlink: the IPCTNL_MSG_CT_GET_STATS_CPU dump that
//! `conntrack -S` prints, one message per possible CPU (`ctnetlink_ct_stat_cpu_dump`), each kept
//! on its own: the counters are 32-bit per CPU, so only per-CPU differences survive a wrap.
//! Unlike `/proc/net/stat/nf_conntrack` it exists on kernels built without
//! CONFIG_NF_CONNTRACK_PROCFS.

use ctguard_protocol::{ConntrackStats, status::CpuStats};

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

/// One CPU's message (nfgenmsg, whose res_id is the CPU number, then one be32 attribute per
/// counter; `ctnetlink_ct_stat_cpu_fill_info`). Counters this kernel does not send are 0.
/// `None` for a payload too short to be one.
pub fn parse_cpu(payload: &[u8]) -> Option<CpuStats> {
    let cpu = u16::from_be_bytes(payload.get(2..4)?.try_into().ok()?);
    let mut stats = ConntrackStats::default();
    for (kind, value) in attributes(payload.get(4..)?) {
        let Some(value) = be32(value) else { continue };
        let counter = match kind {
            CTA_STATS_FOUND => &mut stats.found,
            CTA_STATS_INVALID => &mut stats.invalid,
            CTA_STATS_INSERT => &mut stats.insert,
            CTA_STATS_INSERT_FAILED => &mut stats.insert_failed,
            CTA_STATS_DROP => &mut stats.drop,
            CTA_STATS_EARLY_DROP => &mut stats.early_drop,
            CTA_STATS_ERROR => &mut stats.error,
            CTA_STATS_SEARCH_RESTART => &mut stats.search_restart,
            CTA_STATS_CLASH_RESOLVE => &mut stats.clash_resolve,
            CTA_STATS_CHAIN_TOOLONG => &mut stats.chaintoolong,
            _ => continue,
        };
        *counter = u64::from(value);
    }
    Some(CpuStats {
        cpu: u32::from(cpu),
        stats,
    })
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
    fn reads_every_counter_of_one_cpu() {
        let all: Vec<(u16, u32)> = (1..=15).map(|kind| (kind, u32::from(kind) * 10)).collect();
        assert_eq!(
            parse_cpu(&cpu_payload(3, &all)),
            Some(CpuStats {
                cpu: 3,
                stats: ConntrackStats {
                    found: 20,
                    invalid: 40,
                    insert: 80,
                    insert_failed: 90,
                    drop: 100,
                    early_drop: 110,
                    error: 120,
                    search_restart: 130,
                    clash_resolve: 140,
                    chaintoolong: 150,
                },
            }),
            "the attributes no longer used (searched, new, ignore, delete) are not counted"
        );
    }

    #[test]
    fn a_counter_at_its_32_bit_top_is_kept_as_the_kernel_has_it() {
        let cpu = parse_cpu(&cpu_payload(1, &[(CTA_STATS_DROP, u32::MAX)])).expect("a cpu");
        assert_eq!(cpu.stats.drop, u64::from(u32::MAX));
    }

    #[test]
    fn an_older_kernel_without_the_newer_counters_leaves_them_zero() {
        let cpu = parse_cpu(&cpu_payload(1, &[(CTA_STATS_FOUND, 5)])).expect("a cpu");
        assert_eq!(cpu.stats.found, 5);
        assert_eq!(cpu.stats.clash_resolve, 0);
        assert_eq!(cpu.stats.chaintoolong, 0);
    }

    #[test]
    fn short_or_garbled_payloads_never_panic() {
        assert_eq!(parse_cpu(&[0, 0]), None);
        let whole = cpu_payload(2, &[(CTA_STATS_INVALID, 7), (CTA_STATS_DROP, 9)]);
        for end in 0..whole.len() {
            let _ = parse_cpu(&whole[..end]);
        }
        let _ = parse_cpu(&[0xff; 40]);
    }
}
