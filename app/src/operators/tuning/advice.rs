//! The Tuning page's arithmetic, pure and unit-tested: what each conntrack setting should be on
//! this host and why, what following the advice costs and when it is wrong. The limit follows the
//! observed peak (RAM only caps it), the buckets follow the limit (never shrink), and the
//! established-TCP timeout keeps the kernel default unless stale connections fill the table.

use ctguard_protocol::{ConntrackModule, ConntrackStatus, SysctlKey, SysctlUnit};
use serde::{Deserialize, Serialize};

/// The most of the host's RAM a full table may take: 1/16 (6.25 %). A ceiling, never a target.
pub const MEMORY_SHARE_DIVISOR: u64 = 16;
/// The recommended limit is the observed 24-hour peak times this.
pub const PEAK_HEADROOM: u64 = 2;
/// Every entry is hashed twice (its original and its reply tuple: `__nf_conntrack_hash_insert`),
/// so at a full table the average chain is `2 × max / buckets`.
pub const NODES_PER_ENTRY: u64 = 2;
/// Past this average chain at a full table the buckets are raised with the limit.
pub const MAX_CHAIN_AT_FULL: f64 = 4.0;
/// `__nf_conntrack_confirm` refuses an insert (`chaintoolong`, counted in insert_failed, packet
/// dropped) when a chain is longer than `MIN_CHAINLEN + get_random_u32_below(MAX_CHAINLEN)`:
/// a random bound of 50 to 79 nodes per insert.
pub const KERNEL_MIN_CHAINLEN: u64 = 50;
pub const KERNEL_CHAINLEN_SPREAD: u64 = 30;
/// A hash bucket is one `hlist_nulls_head`: 8 bytes on 64-bit, allocated whatever the count.
pub const BUCKET_BYTES: u64 = 8;
/// `nf_ct_alloc_hashtable` rounds the bucket count up to a page of heads (4096 / 8).
pub const BUCKET_ROUNDING: u64 = 512;
/// Given `hashsize=` at module load, `nf_conntrack_init_start` sets max = 8 × hashsize (the old
/// factor, "to avoid implicit reduction of the max entries setting").
pub const HASHSIZE_MAX_FACTOR: u64 = 8;
/// RFC 5382 REQ-5: a NAT must not expire an established TCP connection idle for less than
/// 2 hours 4 minutes. A floor, not a target.
pub const RFC5382_ESTABLISHED_FLOOR_SECS: u64 = 2 * 3600 + 4 * 60;
/// The kernel's default for established TCP (`tcp_timeouts[TCP_CONNTRACK_ESTABLISHED]`): 5 days.
pub const KERNEL_ESTABLISHED_SECS: u64 = 432_000;
/// kube-proxy's `--conntrack-tcp-timeout-established` default: 24 hours, for tables that fill
/// with connections whose peers vanished without a FIN or RST.
pub const STALE_ESTABLISHED_SECS: u64 = 86_400;
/// "Stale established entries fill the table": the table is at least this full...
pub const STALE_FILL_PERCENT: u64 = 80;
/// ...and at least this share of its entries are ESTABLISHED.
pub const STALE_ESTABLISHED_PERCENT: u64 = 50;

/// How the server's answer to the first of two confirmations begins (the confirmation flow
/// recognises it and asks for the preview again).
pub const FIRST_OF_TWO_CONFIRMATIONS: &str = "First of two confirmations given";

/// What the host has shown beyond its settings: the evidence the advice rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The highest entry count of the last 24 hours (the dashboard's per-minute peaks).
    pub peak_24h: Option<u64>,
    /// From one walk of the table: ESTABLISHED entries, and all entries.
    pub established: Option<(u64, u64)>,
    /// Whether nf_conntrack is a module or built in: how the hash size persists.
    #[serde(default)]
    pub module: ConntrackModule,
}

/// A suggestion for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    pub key: SysctlKey,
    pub current: u64,
    /// `None`: no opinion; the current value: keep it.
    pub recommended: Option<u64>,
    pub reasoning: String,
    /// What following the recommendation costs (memory, a pause, broken idle connections).
    pub cost: String,
    /// When the recommendation is wrong for this host.
    pub wrong_when: String,
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

/// The kernel's own default (Linux 6.x), or `None` where it depends on the host's RAM (see
/// [`kernel_default_table_size`]).
pub fn kernel_default(key: SysctlKey) -> Option<u64> {
    match key {
        SysctlKey::NfConntrackMax | SysctlKey::NfConntrackBuckets => None,
        SysctlKey::TcpTimeoutEstablished => Some(KERNEL_ESTABLISHED_SECS),
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

/// The buckets (and, without `hashsize=`, the limit: max = buckets) nf_conntrack sizes itself
/// with at load on a 64-bit host (`nf_conntrack_init_start`): RAM / 16384 / 8, then 262,144 above
/// 4 GiB, 65,536 above 1 GiB, and never fewer than 1,024.
pub fn kernel_default_table_size(host_memory_bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    if host_memory_bytes > 4 * GIB {
        262_144
    } else if host_memory_bytes > GIB {
        65_536
    } else {
        (host_memory_bytes / 16_384 / BUCKET_BYTES).max(1_024)
    }
}

fn clamp(key: SysctlKey, value: u64) -> u64 {
    let (min, max) = key.bounds();
    value.clamp(min, max)
}

/// The average chain at a full table: every entry is in two chains.
pub fn chain_at_full(max: u64, buckets: u64) -> f64 {
    (NODES_PER_ENTRY * max) as f64 / buckets.max(1) as f64
}

/// P(X > k) for X ~ Poisson(λ), summed in log space so a large λ does not underflow.
fn poisson_tail(lambda: f64, k: u64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut log_pmf = -lambda;
    let mut cdf = log_pmf.exp();
    for i in 1..=k {
        log_pmf += lambda.ln() - (i as f64).ln();
        cdf += log_pmf.exp();
    }
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// The share of new connections the kernel would refuse as `chaintoolong` at a full table,
/// modelling chain lengths as Poisson with the average [`chain_at_full`]. The walk in
/// `__nf_conntrack_confirm` refuses once `chainlen++ > max_chainlen`, that is on a chain of more
/// than bound + 1 nodes, checked for both the original and the reply bucket.
pub fn refused_share_at_full(max: u64, buckets: u64) -> f64 {
    let lambda = chain_at_full(max, buckets);
    let bounds = KERNEL_MIN_CHAINLEN..KERNEL_MIN_CHAINLEN + KERNEL_CHAINLEN_SPREAD;
    let one_bucket = bounds
        .clone()
        .map(|bound| poisson_tail(lambda, bound + 1))
        .sum::<f64>()
        / KERNEL_CHAINLEN_SPREAD as f64;
    1.0 - (1.0 - one_bucket).powi(2)
}

/// What one more entry of limit costs: its slab object (plus extension area, as the helper
/// measures it) and the 8-byte bucket that comes with it at the kernel's ratio (buckets = max).
pub fn bytes_per_entry(entry_bytes: u64) -> u64 {
    entry_bytes + BUCKET_BYTES
}

/// The largest limit whose full table, buckets included, fits in 1/16 of RAM (a multiple of
/// 1,024); `None` without the entry size.
pub fn memory_ceiling(status: &ConntrackStatus) -> Option<u64> {
    let entry = status.entry_bytes.filter(|&bytes| bytes > 0)?;
    let by_memory = status.host_memory_bytes / MEMORY_SHARE_DIVISOR / bytes_per_entry(entry);
    Some(clamp(SysctlKey::NfConntrackMax, by_memory / 1024 * 1024))
}

/// The limit the observed peak asks for: the 24-hour peak × 2, never below the kernel's own
/// default for this RAM, rounded up to a multiple of 1,024.
pub fn limit_for_peak(peak: u64, host_memory_bytes: u64) -> u64 {
    let wanted = peak
        .saturating_mul(PEAK_HEADROOM)
        .max(kernel_default_table_size(host_memory_bytes));
    clamp(SysctlKey::NfConntrackMax, wanted.div_ceil(1024) * 1024)
}

/// The recommended limit: the current one while it covers the peak with headroom and a full
/// table fits the RAM ceiling; otherwise the peak's limit, capped by the ceiling. `None` without
/// the entry size.
pub fn recommended_max(status: &ConntrackStatus, observed: &Observed) -> Option<u64> {
    let ceiling = memory_ceiling(status)?;
    let peak = observed.peak_24h.unwrap_or(0).max(status.count);
    let wanted = limit_for_peak(peak, status.host_memory_bytes).min(ceiling);
    let current = status.max;
    Some(if (wanted..=ceiling).contains(&current) {
        current
    } else {
        wanted
    })
}

/// Buckets for `max` entries: never fewer than now; when the chains at a full table would pass
/// [`MAX_CHAIN_AT_FULL`], as many as the limit (the kernel's own ratio, chains of 2), rounded up
/// as the kernel rounds them.
pub fn recommended_buckets(current: u64, max: u64) -> u64 {
    if chain_at_full(max, current) <= MAX_CHAIN_AT_FULL {
        return current;
    }
    let wanted = clamp(
        SysctlKey::NfConntrackBuckets,
        max.div_ceil(BUCKET_ROUNDING) * BUCKET_ROUNDING,
    );
    wanted.max(current)
}

/// The buckets a new limit brings along in the same change, or `None` when the current buckets
/// keep the chains at a full table within [`MAX_CHAIN_AT_FULL`].
pub fn buckets_for_new_limit(new_max: u64, current_buckets: u64) -> Option<u64> {
    let wanted = recommended_buckets(current_buckets, new_max);
    (wanted != current_buckets).then_some(wanted)
}

/// Whether stale established connections fill the table: it is near full and most of it is
/// ESTABLISHED (with a 5-day timeout, a connection whose peer vanished without FIN or RST stays
/// that long).
pub fn stale_established_fill(status: &ConntrackStatus, observed: &Observed) -> bool {
    let near_full = status.max > 0 && status.count * 100 >= status.max * STALE_FILL_PERCENT;
    let mostly_established = observed.established.is_some_and(|(established, all)| {
        all > 0 && established * 100 >= all * STALE_ESTABLISHED_PERCENT
    });
    near_full && mostly_established
}

/// The recommended established-TCP timeout: 24 h where stale established entries fill the table
/// (if longer now), the kernel default where the value is below RFC 5382's floor, otherwise the
/// current value.
pub fn recommended_established(current: u64, stale_fill: bool) -> u64 {
    if stale_fill {
        if (RFC5382_ESTABLISHED_FLOOR_SECS..=STALE_ESTABLISHED_SECS).contains(&current) {
            current
        } else {
            STALE_ESTABLISHED_SECS
        }
    } else if current < RFC5382_ESTABLISHED_FLOOR_SECS {
        KERNEL_ESTABLISHED_SECS
    } else {
        current
    }
}

/// Whether setting `key` to `value` needs the admin's second, explicit confirmation: only an
/// established-TCP timeout below RFC 5382's floor, which breaks idle connections through NAT.
pub fn needs_second_confirmation(key: SysctlKey, value: u64) -> bool {
    key == SysctlKey::TcpTimeoutEstablished && value < RFC5382_ESTABLISHED_FLOOR_SECS
}

/// What the kernel's chain bound does at a full table with these buckets, in words: a share
/// only where it is one a person would notice.
pub fn refusals_in_words(max: u64, buckets: u64) -> String {
    let share = refused_share_at_full(max, buckets);
    if share >= 0.001 {
        format!(
            "about {:.1} % of new connections near the limit would be refused",
            share * 100.0
        )
    } else {
        format!(
            "hardly any yet at chains of {:.1}, but every lookup walks them and the margin to \
             that bound shrinks",
            chain_at_full(max, buckets)
        )
    }
}

/// What a bucket count means at a limit, in one sentence.
pub fn chains_in_words(max: u64, buckets: u64) -> String {
    format!(
        "at a full table ({} entries, each in two chains) {} buckets give chains of {:.1} on average",
        crate::format::thousands(max),
        crate::format::thousands(buckets),
        chain_at_full(max, buckets)
    )
}

/// How a persisted hash size comes back after a reboot, by how nf_conntrack is in the kernel.
pub fn hashsize_after_reboot(module: ConntrackModule, buckets: u64) -> String {
    match module {
        ConntrackModule::Loadable => format!(
            "Kept after reboot as the module's hashsize, which also sets the limit at load \
             (max = {HASHSIZE_MAX_FACTOR} × hashsize)."
        ),
        ConntrackModule::BuiltIn => format!(
            "nf_conntrack is built into this kernel: there is no module option, so the sysctl.d \
             file resizes the hash once systemd-sysctl runs at boot; to size it from the start, \
             add nf_conntrack.hashsize={buckets} to the kernel command line (which also sets the \
             limit, max = {HASHSIZE_MAX_FACTOR} × hashsize, unless sysctl.d sets it)."
        ),
        ConntrackModule::Unknown => format!(
            "Kept after reboot as the module's hashsize (max = {HASHSIZE_MAX_FACTOR} × hashsize at \
             load); where nf_conntrack is built into the kernel, the kernel command line needs \
             nf_conntrack.hashsize={buckets} instead."
        ),
    }
}

/// One recommendation per key in `values` (the helper's current values), in the same order.
pub fn recommend(
    status: &ConntrackStatus,
    observed: &Observed,
    values: &[(SysctlKey, u64)],
) -> Vec<Recommendation> {
    values
        .iter()
        .map(|&(key, current)| recommend_one(status, observed, key, current))
        .collect()
}

fn recommend_one(
    status: &ConntrackStatus,
    observed: &Observed,
    key: SysctlKey,
    current: u64,
) -> Recommendation {
    let advice = match key {
        SysctlKey::NfConntrackMax => limit_advice(status, observed, current),
        SysctlKey::NfConntrackBuckets => buckets_advice(status, observed.module, current),
        SysctlKey::TcpTimeoutEstablished => established_advice(status, observed, current),
        SysctlKey::NeighGcThresh1 | SysctlKey::NeighGcThresh2 | SysctlKey::NeighGcThresh3 => {
            Advice::none(
                "The kernel's default suits most hosts. Past gc_thresh3 the kernel logs \
                 \"neighbor table overflow!\" (arp_cache) and drops packets to new neighbours; \
                 IPv6 (ndisc_cache) has its own keys, net.ipv6.neigh.default.gc_thresh1–3.",
            )
        }
        SysctlKey::NeighGcStaleTime => Advice::none(
            "The kernel's default suits most hosts. Writing the default also changes at once \
             every existing interface never tuned by its own key (neigh_copy_dflt_parms); an \
             interface set through net.ipv4.neigh.<interface>.gc_stale_time keeps its value.",
        ),
        _ => Advice::none("The kernel's default suits most hosts."),
    };
    Recommendation {
        key,
        current,
        recommended: advice.recommended,
        reasoning: advice.reasoning,
        cost: advice.cost,
        wrong_when: advice.wrong_when,
    }
}

struct Advice {
    recommended: Option<u64>,
    reasoning: String,
    cost: String,
    wrong_when: String,
}

impl Advice {
    fn none(reasoning: &str) -> Self {
        Self {
            recommended: None,
            reasoning: reasoning.to_owned(),
            cost: String::new(),
            wrong_when: String::new(),
        }
    }
}

fn limit_advice(status: &ConntrackStatus, observed: &Observed, current: u64) -> Advice {
    let (Some(entry), Some(ceiling), Some(recommended)) = (
        status.entry_bytes,
        memory_ceiling(status),
        recommended_max(status, observed),
    ) else {
        return Advice::none("The entry size is unknown (the helper could not read the slab).");
    };
    let thousands = crate::format::thousands;
    let bytes = crate::format::bytes;
    let peak = observed.peak_24h.unwrap_or(0).max(status.count);
    let default = kernel_default_table_size(status.host_memory_bytes);
    let basis = if recommended == current {
        "the current limit covers it".to_owned()
    } else if recommended == ceiling && limit_for_peak(peak, status.host_memory_bytes) > ceiling {
        format!(
            "RAM caps it at {}: a full table may take at most 1/{MEMORY_SHARE_DIVISOR} of {}",
            thousands(ceiling),
            bytes(status.host_memory_bytes)
        )
    } else if peak * PEAK_HEADROOM <= default {
        format!(
            "never below the kernel's own default for this RAM, {}",
            thousands(default)
        )
    } else {
        format!("{} entries", thousands(recommended))
    };
    Advice {
        recommended: Some(recommended),
        reasoning: format!(
            "The 24-hour peak is {} entries; twice that, with room for a burst: {basis}. \
             RAM is a ceiling, not a target ({} entries fit in 1/{MEMORY_SHARE_DIVISOR} of RAM).",
            thousands(peak),
            thousands(ceiling),
        ),
        cost: format!(
            "A full table at {} entries takes {} of kernel memory ({} per entry: its slab object \
             and its share of the buckets); now {}. Every network namespace may hold up to the \
             limit on its own.",
            thousands(recommended),
            bytes(recommended.saturating_mul(bytes_per_entry(entry))),
            bytes(bytes_per_entry(entry)),
            bytes(current.saturating_mul(bytes_per_entry(entry))),
        ),
        wrong_when: "Wrong when the last 24 hours were not typical (a known busy season, a \
                     failover that moves connections here): size for that peak instead. A \
                     limit far above the buckets refuses new connections on long chains before \
                     the table is full; raising it here brings the buckets along."
            .to_owned(),
    }
}

fn buckets_advice(status: &ConntrackStatus, module: ConntrackModule, current: u64) -> Advice {
    let recommended = recommended_buckets(current, status.max);
    let thousands = crate::format::thousands;
    let now = chains_in_words(status.max, current);
    let reasoning = if recommended == current {
        format!(
            "Keep: {now}, within {MAX_CHAIN_AT_FULL:.0}. Never fewer buckets than now: a smaller \
             hash only lengthens the chains every lookup walks."
        )
    } else {
        format!(
            "Raise: {now}; the kernel refuses an insert when a chain passes a random bound of \
             {KERNEL_MIN_CHAINLEN}–{} (chaintoolong): {}. {} buckets (one per entry, the \
             kernel's own ratio) give chains of {:.1}.",
            KERNEL_MIN_CHAINLEN + KERNEL_CHAINLEN_SPREAD - 1,
            refusals_in_words(status.max, current),
            thousands(recommended),
            chain_at_full(status.max, recommended),
        )
    };
    Advice {
        recommended: Some(recommended),
        reasoning,
        cost: format!(
            "{} buckets take {} ({BUCKET_BYTES} B each, allocated whatever the count); a resize \
             pauses lookups briefly. {}",
            thousands(recommended),
            crate::format::bytes(recommended.saturating_mul(BUCKET_BYTES)),
            hashsize_after_reboot(module, recommended),
        ),
        wrong_when: "Wrong only on a host short of a few MiB of memory; more buckets never make \
                     lookups slower."
            .to_owned(),
    }
}

fn established_advice(status: &ConntrackStatus, observed: &Observed, current: u64) -> Advice {
    let stale = stale_established_fill(status, observed);
    let recommended = recommended_established(current, stale);
    let floor = format!(
        "RFC 5382 asks NATs to keep idle established TCP for at least {}: that is the floor \
         below which idle connections through NAT (SSH, databases) break, not a target",
        duration(RFC5382_ESTABLISHED_FLOOR_SECS)
    );
    let reasoning = if stale {
        format!(
            "The table is at least {STALE_FILL_PERCENT} % full and most of it is ESTABLISHED: \
             connections whose peers vanished without FIN or RST stay for the whole timeout. \
             {} (kube-proxy's value) frees them sooner. {floor}.",
            duration(STALE_ESTABLISHED_SECS)
        )
    } else if current < RFC5382_ESTABLISHED_FLOOR_SECS {
        format!(
            "{} is below the floor. {floor}. The kernel default is {}.",
            duration(current),
            duration(KERNEL_ESTABLISHED_SECS)
        )
    } else {
        format!(
            "Keep: stale established entries do not fill the table. {floor}; the kernel \
             default is {}.",
            duration(KERNEL_ESTABLISHED_SECS)
        )
    };
    Advice {
        recommended: Some(recommended),
        reasoning,
        cost: format!(
            "At {}, a connection idle longer than that loses its entry: through NAT it breaks, \
             elsewhere its next packet is tracked anew (or refused as invalid by strict rules).",
            duration(recommended)
        ),
        wrong_when: format!(
            "Wrong when long-idle connections matter here (database pools, SSH without \
             keepalives): never below {}; a value below it needs a second confirmation.",
            duration(RFC5382_ESTABLISHED_FLOOR_SECS)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn status(entry_bytes: Option<u64>, host_memory_bytes: u64, max: u64) -> ConntrackStatus {
        ConntrackStatus {
            count: 0,
            max,
            buckets: max,
            stats: Default::default(),
            entry_bytes,
            host_memory_bytes,
            per_cpu: Vec::new(),
            identity: None,
            memory: Default::default(),
        }
    }

    fn peak(peak_24h: u64) -> Observed {
        Observed {
            peak_24h: Some(peak_24h),
            established: None,
            module: ConntrackModule::Loadable,
        }
    }

    fn one(
        status: &ConntrackStatus,
        observed: &Observed,
        key: SysctlKey,
        current: u64,
    ) -> Recommendation {
        recommend(status, observed, &[(key, current)]).remove(0)
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
    fn the_kernel_sizes_its_table_from_ram_as_nf_conntrack_init_start_does() {
        assert_eq!(kernel_default_table_size(8 * GIB), 262_144);
        assert_eq!(
            kernel_default_table_size(4 * GIB),
            65_536,
            "above 4 GiB only"
        );
        assert_eq!(kernel_default_table_size(2 * GIB), 65_536);
        // 512 MiB: 512 MiB / 16384 / 8 = 4,096.
        assert_eq!(kernel_default_table_size(512 << 20), 4_096);
        assert_eq!(
            kernel_default_table_size(16 << 20),
            1_024,
            "never fewer than 1,024"
        );
    }

    #[test]
    fn the_limit_follows_the_peak_not_the_ram() {
        // The issue's host: 8,700 at peak, lots of RAM. 1/16 of RAM alone offered millions.
        let mut host = status(Some(256), 400 * GIB, 262_144);
        host.count = 5_000;
        assert_eq!(
            recommended_max(&host, &peak(8_700)),
            Some(262_144),
            "twice the peak is below the kernel default: keep the default"
        );
        // A busy host whose peak outgrew the limit: twice the peak, rounded up to 1,024.
        host.max = 65_536;
        assert_eq!(recommended_max(&host, &peak(200_000)), Some(400_384));
        // The current limit, if it already covers twice the peak and fits the RAM, stays.
        host.max = 1_048_576;
        assert_eq!(recommended_max(&host, &peak(200_000)), Some(1_048_576));
        assert_eq!(recommended_max(&status(None, 4 * GIB, 0), &peak(1)), None);
    }

    #[test]
    fn ram_caps_the_limit_at_the_real_cost_per_entry() {
        // 2 GiB at 256 B + 8 B per entry: 2 GiB / 16 / 264 = 508,400.5 → 507,904.
        let small = status(Some(256), 2 * GIB, 65_536);
        assert_eq!(memory_ceiling(&small), Some(507_904));
        assert_eq!(recommended_max(&small, &peak(1_000_000)), Some(507_904));
        // A limit above the ceiling comes down to it when the peak allows.
        let oversized = status(Some(256), 2 * GIB, 4_000_000);
        assert_eq!(recommended_max(&oversized, &peak(10_000)), Some(65_536));
        let advice = one(&small, &peak(1_000_000), SysctlKey::NfConntrackMax, 65_536);
        assert!(
            advice.reasoning.contains("RAM caps it"),
            "{}",
            advice.reasoning
        );
        assert!(advice.cost.contains("264 B per entry"), "{}", advice.cost);
        assert!(
            advice.cost.contains("Every network namespace"),
            "{}",
            advice.cost
        );
        assert!(
            advice.wrong_when.starts_with("Wrong when"),
            "{}",
            advice.wrong_when
        );
    }

    #[test]
    fn the_limit_is_never_recommended_below_the_kernel_default() {
        let host = status(Some(256), 8 * GIB, 4_096);
        let advice = one(&host, &peak(4_096), SysctlKey::NfConntrackMax, 4_096);
        assert_eq!(advice.recommended, Some(262_144));
        assert!(
            advice.reasoning.contains("kernel's own default"),
            "{}",
            advice.reasoning
        );
    }

    #[test]
    fn buckets_are_never_recommended_below_their_current_value() {
        // A default 6.x host: 262,144 buckets for 262,144 entries. Today's maths offered 65,536.
        assert_eq!(recommended_buckets(262_144, 262_144), 262_144);
        let host = status(Some(256), 8 * GIB, 262_144);
        let advice = one(&host, &peak(10_000), SysctlKey::NfConntrackBuckets, 262_144);
        assert_eq!(advice.recommended, Some(262_144));
        assert!(!advice.differs());
        assert!(
            advice.reasoning.contains("Never fewer buckets"),
            "{}",
            advice.reasoning
        );
        // More buckets than the kernel ratio: kept, not trimmed.
        assert_eq!(recommended_buckets(1_048_576, 262_144), 1_048_576);
    }

    #[test]
    fn chains_count_both_tuples_of_every_entry() {
        assert_eq!(
            chain_at_full(262_144, 262_144),
            2.0,
            "the kernel's default ratio"
        );
        assert_eq!(chain_at_full(65_536, 16_384), 8.0);
    }

    #[test]
    fn buckets_follow_a_limit_whose_chains_would_pass_four() {
        assert_eq!(buckets_for_new_limit(524_288, 262_144), None, "chains of 4");
        assert_eq!(
            buckets_for_new_limit(600_000, 262_144),
            Some(600_064),
            "one per entry, rounded up to 512 as nf_ct_alloc_hashtable does"
        );
        let host = status(Some(256), 8 * GIB, 65_536);
        let advice = one(&host, &peak(10_000), SysctlKey::NfConntrackBuckets, 16_384);
        assert_eq!(advice.recommended, Some(65_536));
        assert!(
            advice.reasoning.contains("chaintoolong"),
            "{}",
            advice.reasoning
        );
        assert!(
            advice.cost.contains("max = 8 × hashsize"),
            "{}",
            advice.cost
        );
    }

    #[test]
    fn a_built_in_nf_conntrack_is_told_to_use_the_kernel_command_line_not_modprobe() {
        let host = status(Some(256), 8 * GIB, 65_536);
        let built_in = Observed {
            module: ConntrackModule::BuiltIn,
            ..peak(10_000)
        };
        let advice = one(&host, &built_in, SysctlKey::NfConntrackBuckets, 16_384);
        assert!(
            advice.cost.contains("nf_conntrack.hashsize=65536")
                && advice.cost.contains("built into this kernel")
                && !advice.cost.contains("module's hashsize"),
            "{}",
            advice.cost
        );
    }

    #[test]
    fn long_chains_refuse_new_connections_as_the_issue_measured() {
        // 6,170,624 entries in 262,144 buckets: chains of 47, about 8 % of inserts refused.
        let share = refused_share_at_full(6_170_624, 262_144);
        assert!((0.075..0.087).contains(&share), "{share}");
        assert!(
            refused_share_at_full(262_144, 262_144) < 1e-12,
            "chains of 2"
        );
        assert!(refused_share_at_full(16_777_216, 1_024) > 0.999);
    }

    #[test]
    fn refusals_are_a_share_only_where_one_would_notice() {
        assert_eq!(
            refusals_in_words(6_170_624, 262_144),
            "about 8.1 % of new connections near the limit would be refused"
        );
        let short = refusals_in_words(131_072, 16_384);
        assert!(
            short.starts_with("hardly any yet at chains of 16.0"),
            "{short}"
        );
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
    fn established_keeps_the_default_unless_stale_connections_fill_the_table() {
        let mut host = status(Some(256), 8 * GIB, 262_144);
        host.count = 20_000;
        let quiet = Observed {
            peak_24h: Some(30_000),
            established: Some((15_000, 20_000)),
            ..Observed::default()
        };
        let keep = one(&host, &quiet, SysctlKey::TcpTimeoutEstablished, 432_000);
        assert_eq!(
            keep.recommended,
            Some(432_000),
            "RFC 5382's floor is not the target"
        );
        assert!(!keep.differs());
        assert!(keep.reasoning.contains("floor"), "{}", keep.reasoning);

        host.count = 250_000;
        let stale = Observed {
            peak_24h: Some(262_144),
            established: Some((200_000, 250_000)),
            ..Observed::default()
        };
        let shorter = one(&host, &stale, SysctlKey::TcpTimeoutEstablished, 432_000);
        assert_eq!(shorter.recommended, Some(86_400));
        assert!(
            shorter.reasoning.contains("kube-proxy"),
            "{}",
            shorter.reasoning
        );
        assert!(shorter.cost.contains("1 d"), "{}", shorter.cost);

        // A full table of other things (a UDP flood) is no reason to shorten established TCP.
        let udp = Observed {
            peak_24h: Some(262_144),
            established: Some((10_000, 250_000)),
            ..Observed::default()
        };
        assert_eq!(
            one(&host, &udp, SysctlKey::TcpTimeoutEstablished, 432_000).recommended,
            Some(432_000)
        );
    }

    #[test]
    fn established_below_rfc_5382_is_raised_and_needs_a_second_confirmation() {
        let host = status(Some(256), 8 * GIB, 262_144);
        let seed = one(&host, &peak(1_000), SysctlKey::TcpTimeoutEstablished, 180);
        assert_eq!(seed.recommended, Some(432_000));
        assert!(
            seed.reasoning.contains("3 min is below the floor"),
            "{}",
            seed.reasoning
        );
        assert!(seed.reasoning.contains("2 h 4 min"));
        assert!(needs_second_confirmation(
            SysctlKey::TcpTimeoutEstablished,
            180
        ));
        assert!(!needs_second_confirmation(
            SysctlKey::TcpTimeoutEstablished,
            7_440
        ));
        assert!(!needs_second_confirmation(SysctlKey::UdpTimeout, 10));
        assert_eq!(
            with_unit(SysctlKey::TcpTimeoutEstablished, 180),
            "180 s (3 min)"
        );
    }

    #[test]
    fn neighbour_wording_matches_the_kernel() {
        let host = status(Some(256), 8 * GIB, 262_144);
        let thresh3 = one(&host, &peak(1), SysctlKey::NeighGcThresh3, 1_024);
        assert!(
            thresh3.reasoning.contains("neighbor table overflow!"),
            "the kernel's spelling"
        );
        assert!(!thresh3.reasoning.contains("neighbour table overflow"));
        assert!(
            thresh3
                .reasoning
                .contains("net.ipv6.neigh.default.gc_thresh1"),
            "NDP apart"
        );
        let stale = one(&host, &peak(1), SysctlKey::NeighGcStaleTime, 60);
        assert!(
            stale.reasoning.contains("existing interface"),
            "{}",
            stale.reasoning
        );
        assert_eq!(stale.recommended, None);
        let other = one(&host, &peak(1), SysctlKey::UdpTimeout, 30);
        assert_eq!(other.recommended, None);
        assert!(!other.differs());
    }
}
