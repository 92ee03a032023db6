//! The value the kernel keeps for a write: nf_conntrack_buckets is rounded up to a whole page of
//! bucket heads, every other key is kept as written.

use ctguard_protocol::SysctlKey;

/// Bucket heads per page: `nf_ct_alloc_hashtable` (nf_conntrack_core.c) rounds the size up to a
/// multiple of `PAGE_SIZE / sizeof(struct hlist_nulls_head)`, and `nf_conntrack_hash_sysctl`
/// (nf_conntrack_standalone.c) then shows the size the resize used. A `hlist_nulls_head` is one
/// pointer: 4096 / 8 = 512 on 64-bit x86.
pub fn buckets_per_page() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|bytes| u64::try_from(bytes).ok())
        .unwrap_or(4_096);
    page / std::mem::size_of::<usize>() as u64
}

/// What `key` reads back as after a successful write of `value`.
pub fn kernel_keeps(key: SysctlKey, value: u64, buckets_per_page: u64) -> u64 {
    match key {
        SysctlKey::NfConntrackBuckets if buckets_per_page > 0 => {
            value.div_ceil(buckets_per_page) * buckets_per_page
        }
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_up_to_a_page_of_heads_and_nothing_else_moves() {
        // 512 on x86-64 with 4 KiB pages; 8192 on arm64 with 64 KiB pages.
        assert!(buckets_per_page() >= 512 && buckets_per_page().is_power_of_two());
        let key = SysctlKey::NfConntrackBuckets;
        assert_eq!(kernel_keeps(key, 1_024, 512), 1_024);
        assert_eq!(kernel_keeps(key, 1_025, 512), 1_536);
        assert_eq!(kernel_keeps(key, 100_000, 512), 100_352);
        assert_eq!(kernel_keeps(key, 4_194_303, 512), 4_194_304);
        assert_eq!(kernel_keeps(SysctlKey::NfConntrackMax, 1_025, 512), 1_025);
    }
}
