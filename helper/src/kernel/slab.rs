//! Parser of `/proc/slabinfo` (format 2.1): finds the object size of one slab cache.

/// The object size in bytes of the cache named `cache`, if listed.
pub fn object_size(slabinfo: &str, cache: &str) -> Option<u64> {
    slabinfo
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("slabinfo"))
        .find_map(|line| {
            // name <active_objs> <num_objs> <objsize> ...
            let mut fields = line.split_whitespace();
            (fields.next()? == cache).then(|| fields.nth(2)?.parse().ok())?
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
}
