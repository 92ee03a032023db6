//! Parser of `/proc/slabinfo` (format 2.1): one slab cache's object size and what it holds. The
//! file is host-wide: the `nf_conntrack` cache holds every namespace's entries.

use ctguard_protocol::status::SlabUsage;

/// The object size in bytes of the cache named `cache`, if listed.
pub fn object_size(slabinfo: &str, cache: &str) -> Option<u64> {
    usage(slabinfo, cache, 0).map(|usage| usage.object_bytes)
}

/// The cache's line: objects in use and held, their size, and its pages (`num_slabs` ×
/// `pagesperslab` × `page_size`). `None` when it is not listed or its line is garbled.
pub fn usage(slabinfo: &str, cache: &str, page_size: u64) -> Option<SlabUsage> {
    slabinfo
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("slabinfo"))
        .find_map(|line| {
            // name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables
            // ... : slabdata <active_slabs> <num_slabs> <sharedavail>
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() != Some(&cache) {
                return None;
            }
            let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
            let slabdata = fields.iter().position(|field| *field == "slabdata")?;
            let pages_per_slab = number(5)?;
            let num_slabs = number(slabdata + 2)?;
            Some(SlabUsage {
                active_objects: number(1)?,
                total_objects: number(2)?,
                object_bytes: number(3)?,
                bytes: num_slabs
                    .saturating_mul(pages_per_slab)
                    .saturating_mul(page_size),
            })
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SLABINFO: &str = "\
slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
nf_conntrack_expect      0      0    208   39    2 : tunables    0    0    0 : slabdata      0      0      0
nf_conntrack         65536  65600    256   32    2 : tunables    0    0    0 : slabdata   2050   2050      0
kmalloc-256         2048   2048    256   32    2 : tunables    0    0    0 : slabdata     64     64      0
";

    #[test]
    fn finds_the_exact_cache_not_a_prefix() {
        assert_eq!(object_size(SLABINFO, "nf_conntrack"), Some(256));
        assert_eq!(object_size(SLABINFO, "nf_conntrack_expect"), Some(208));
        assert_eq!(object_size(SLABINFO, "nf_conn"), None);
        assert_eq!(object_size("", "nf_conntrack"), None);
    }

    #[test]
    fn reads_objects_in_use_and_the_pages_held() {
        assert_eq!(
            usage(SLABINFO, "nf_conntrack", 4096),
            Some(SlabUsage {
                active_objects: 65_536,
                total_objects: 65_600,
                object_bytes: 256,
                bytes: 2_050 * 2 * 4096,
            })
        );
        // This machine's idle line (6.18, SLUB): nothing in use, nothing held.
        let idle = "nf_conntrack           0      0    256   16    1 : tunables    0    0    0 : slabdata      0      0      0\n";
        assert_eq!(
            usage(idle, "nf_conntrack", 4096).map(|u| (u.active_objects, u.bytes)),
            Some((0, 0))
        );
        assert_eq!(usage("nf_conntrack 1 2 x", "nf_conntrack", 4096), None);
    }
}
