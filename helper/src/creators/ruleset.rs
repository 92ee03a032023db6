//! The text of the counting table `ctguard_creators` and the parse of its listing: one dynamic
//! set per (address family, [`CreatorKey`]), each element counting the entries its key created,
//! and one overflow counter per set for what a full set could not hold.
//!
//! The counting chains hook prerouting and output at priority -199, right after conntrack (-200)
//! made the entry (so addresses are the original tuple's, before any DNAT, as a walk reports
//! them), and match `ct state new ct status ! confirmed`: only the first packet of a flow sees
//! its entry unconfirmed (conntrack confirms it at the last hook), so each created entry counts
//! once however many packets follow before a reply. Entries a later rule drops before they are
//! confirmed count too: they were created. Blocked traffic never counts: the blocks table drops
//! it at raw priority, before conntrack. Who conntrack turned away is counted around it: see
//! [`Stage`].
//!
//! `update @set { key counter }` adds the key when it is new (with a fresh counter) and refreshes
//! its timeout; when the set is full the add fails, the rule breaks before `return`, and the next
//! rule counts the flow in the set's overflow counter. Keys idle for [`ELEMENT_TIMEOUT_SECS`]
//! leave the set, which is exact for the longest window: an idle key created nothing in it.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr, str::FromStr};

use ctguard_protocol::{CreatorKey, Protocol};

pub const TABLE: &str = "ctguard_creators";

/// As long as the longest window.
pub const ELEMENT_TIMEOUT_SECS: u32 = 600;

/// Which address families the table counts. Counting in a `table inet` makes conntrack track
/// both families in the namespace (an nft `ct` expression registers conntrack's hooks for its
/// table's families): a host that tracked only IPv4 would start tracking IPv6 too, so that is
/// an operator's choice (`--count-creators`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    Ipv4,
    Both,
}

impl Families {
    /// The nftables family of the counting table.
    pub fn table_family(self) -> &'static str {
        match self {
            Self::Ipv4 => "ip",
            Self::Both => "inet",
        }
    }

    fn ipv6(self) -> bool {
        self == Self::Both
    }
}

/// One counting set: a family and a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountingSet {
    pub ipv6: bool,
    pub key: CreatorKey,
}

impl CountingSet {
    pub fn all(families: Families) -> Vec<Self> {
        let mut sets = Vec::new();
        for ipv6 in [false, true] {
            if ipv6 && !families.ipv6() {
                continue;
            }
            for key in CreatorKey::ALL {
                sets.push(Self { ipv6, key });
            }
        }
        sets
    }

    pub fn name(self) -> String {
        format!(
            "{}_{}",
            if self.ipv6 { "v6" } else { "v4" },
            self.key.as_str()
        )
    }

    fn overflow_counter(self) -> String {
        format!("{}_uncounted", self.name())
    }

    fn type_expr(self) -> &'static str {
        match (self.ipv6, has_service(self.key)) {
            (false, false) => "ipv4_addr",
            (true, false) => "ipv6_addr",
            (false, true) => "ipv4_addr . inet_proto . inet_service",
            (true, true) => "ipv6_addr . inet_proto . inet_service",
        }
    }

    /// The set's key, read from the packet.
    fn key_expr(self) -> String {
        let family = if self.ipv6 { "ip6" } else { "ip" };
        match self.key {
            CreatorKey::Source => format!("{family} saddr"),
            CreatorKey::Destination => format!("{family} daddr"),
            CreatorKey::DestinationSourcePort => {
                format!("{family} daddr . meta l4proto . th sport")
            }
            CreatorKey::SourceDestinationPort => {
                format!("{family} saddr . meta l4proto . th dport")
            }
        }
    }
}

fn has_service(key: CreatorKey) -> bool {
    matches!(
        key,
        CreatorKey::DestinationSourcePort | CreatorKey::SourceDestinationPort
    )
}

/// The counter of every new flow, whatever its family or protocol.
const TOTAL_COUNTER: &str = "new_flows";

/// Right after conntrack (-200): entries are counted as conntrack made them, with the original
/// tuple's addresses (before any DNAT at -100), the way a walk of the table reports them.
const AFTER_CONNTRACK: i32 = -199;
/// After the blocks table (-300), before conntrack: blocked traffic is not an attempt.
const BEFORE_CONNTRACK: i32 = -250;

/// The two per-source sets that name who is turned away: packets that could start a flow
/// (a TCP segment with SYN and without ACK, or any packet of another protocol) counted before
/// conntrack (`attempts`) and again right after it (`passed`). What conntrack dropped in
/// between (its table full and early drop impossible, or its protocol tracker refusing the
/// packet) is the difference, and the kernel counts the same drops in its `drop` statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Attempts,
    Passed,
}

impl Stage {
    fn set(self, ipv6: bool) -> String {
        format!(
            "{}_{}",
            if ipv6 { "v6" } else { "v4" },
            match self {
                Self::Attempts => "attempts",
                Self::Passed => "passed",
            }
        )
    }

    fn overflow_counter(self, ipv6: bool) -> String {
        format!("{}_uncounted", self.set(ipv6))
    }
}

/// `meta nfproto ...` where the table sees both families; nothing in a `table ip`, where nft
/// refuses it.
fn family_match(families: Families, ipv6: bool) -> &'static str {
    match families {
        Families::Both if ipv6 => "meta nfproto ipv6 ",
        Families::Both => "meta nfproto ipv4 ",
        Families::Ipv4 => "",
    }
}

fn declare_set(s: &mut String, name: &str, type_expr: &str, capacity: u32) {
    let _ = writeln!(
        s,
        "  set {name} {{\n    type {type_expr}; size {capacity}; flags dynamic, timeout; timeout {ELEMENT_TIMEOUT_SECS}s;\n  }}\n  counter {name}_uncounted {{\n  }}"
    );
}

/// The whole table as one `nft -f` transaction that replaces whatever table was there (its
/// counts start again from zero), with the turned-away stages hooked in when `watching`.
pub fn script(families: Families, capacity: u32, watching: bool) -> String {
    let family = families.table_family();
    let sets = CountingSet::all(families);
    let ipv6s: &[bool] = if families.ipv6() {
        &[false, true]
    } else {
        &[false]
    };
    let mut s = format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n");
    let _ = writeln!(s, "table {family} {TABLE} {{");
    let _ = writeln!(s, "  counter {TOTAL_COUNTER} {{\n  }}");
    for set in &sets {
        declare_set(&mut s, &set.name(), set.type_expr(), capacity);
    }
    for &ipv6 in ipv6s {
        let address = if ipv6 { "ipv6_addr" } else { "ipv4_addr" };
        for stage in [Stage::Attempts, Stage::Passed] {
            declare_set(&mut s, &stage.set(ipv6), address, capacity);
        }
    }
    for hook in HOOKS {
        let _ = writeln!(
            s,
            "  chain {hook} {{\n    type filter hook {hook} priority {AFTER_CONNTRACK}; policy accept;\n    ct state new ct status ! confirmed jump count\n  }}"
        );
    }
    // One path per new flow, without coming back: each set's chain updates its set and goes on
    // to the next set's chain (`goto`, so nothing returns through `count`), the family chosen
    // once by a verdict map and the ports' sets entered once for TCP and UDP. A jump per set
    // from `count`, as before, cost a match, a jump and a return per set on every new flow.
    s.push_str("  chain count {\n");
    let _ = writeln!(s, "    counter name \"{TOTAL_COUNTER}\"");
    match families {
        Families::Both => {
            let _ = writeln!(
                s,
                "    meta nfproto vmap {{ ipv4 : goto {}, ipv6 : goto {} }}",
                path_start(false),
                path_start(true)
            );
        }
        Families::Ipv4 => {
            let _ = writeln!(s, "    goto {}", path_start(false));
        }
    }
    s.push_str("  }\n");
    for &ipv6 in ipv6s {
        for (step, next) in counting_path(ipv6) {
            let set = step.name();
            let on = match next {
                Next::Set(next) => format!(" goto {}", next.name()),
                Next::Ports => format!(" goto {}", ports_chain(ipv6)),
                Next::Done => String::new(),
            };
            let _ = writeln!(
                s,
                "  chain {set} {{\n    update @{set} {{ {key} counter }}{on_or_return}\n    counter name \"{overflow}\"{on}\n  }}",
                key = step.key_expr(),
                on_or_return = if on.is_empty() {
                    " return"
                } else {
                    on.as_str()
                },
                overflow = step.overflow_counter(),
            );
        }
        // The first set keyed by a port, in the path's order.
        let first_port_set = CountingSet {
            ipv6,
            key: CreatorKey::ALL
                .into_iter()
                .find(|&key| has_service(key))
                .expect("some keys have a port"),
        };
        let _ = writeln!(
            s,
            "  chain {} {{\n    meta l4proto vmap {{ tcp : goto {first}, udp : goto {first} }}\n  }}",
            ports_chain(ipv6),
            first = first_port_set.name(),
        );
    }
    for stage in [Stage::Attempts, Stage::Passed] {
        let chain = stage.set(false).replace("v4_", "");
        let _ = writeln!(
            s,
            "  chain {chain} {{\n    meta l4proto tcp tcp flags & (syn | ack) != syn return"
        );
        for &ipv6 in ipv6s {
            let _ = writeln!(
                s,
                "    {}jump {}",
                family_match(families, ipv6),
                stage.set(ipv6)
            );
        }
        s.push_str("  }\n");
        for &ipv6 in ipv6s {
            let saddr = if ipv6 { "ip6 saddr" } else { "ip saddr" };
            // No `saddr @attempts` condition here: a lookup that matches counts in the matched
            // element's counter too (the per-element counters of the blocks' sets rely on it),
            // which would count each passed packet as a second attempt.
            let _ = writeln!(
                s,
                "  chain {name} {{\n    update @{name} {{ {saddr} counter }} return\n    counter name \"{overflow}\"\n  }}",
                name = stage.set(ipv6),
                overflow = stage.overflow_counter(ipv6),
            );
        }
    }
    s.push_str("}\n");
    if watching {
        s.push_str(&watch_script(families, true));
    }
    s
}

const HOOKS: [&str; 2] = ["prerouting", "output"];

/// Where a set's chain goes once its set is updated (or found full).
#[derive(Debug, Clone, Copy)]
enum Next {
    Set(CountingSet),
    /// The protocol check in front of the sets keyed by a port.
    Ports,
    Done,
}

/// The first set a new flow of one family is counted in.
fn path_start(ipv6: bool) -> String {
    CountingSet {
        ipv6,
        key: CreatorKey::ALL[0],
    }
    .name()
}

fn ports_chain(ipv6: bool) -> String {
    format!("{}_ports", if ipv6 { "v6" } else { "v4" })
}

/// One family's sets in counting order, each with where it goes next: the address sets, then
/// (for TCP and UDP only) the sets keyed by a port.
fn counting_path(ipv6: bool) -> Vec<(CountingSet, Next)> {
    let sets: Vec<CountingSet> = CreatorKey::ALL
        .into_iter()
        .map(|key| CountingSet { ipv6, key })
        .collect();
    sets.iter()
        .enumerate()
        .map(|(i, &set)| {
            let next = match sets.get(i + 1) {
                None => Next::Done,
                Some(&next) if has_service(next.key) && !has_service(set.key) => Next::Ports,
                Some(&next) => Next::Set(next),
            };
            (set, next)
        })
        .collect()
}

/// The turned-away stages' base chains: `{hook}_before` (attempts, before conntrack) and
/// `{hook}_after` (passed, right after it), for each hook.
fn stage_chains() -> impl Iterator<Item = (String, i32, &'static str, &'static str)> {
    HOOKS.into_iter().flat_map(|hook| {
        [
            (format!("{hook}_before"), BEFORE_CONNTRACK, hook, "attempts"),
            (format!("{hook}_after"), AFTER_CONNTRACK, hook, "passed"),
        ]
    })
}

/// One transaction that hooks the turned-away stages in (`on`) or takes them out, all four
/// base chains at once so that no packet is counted by one stage and not the other (a packet
/// crossing the commit may still be: at most a few per switch). Out, they cost nothing per
/// packet; their sets keep their counts for the windows. Either way idempotent: each chain is
/// declared first, then filled or deleted.
pub fn watch_script(families: Families, on: bool) -> String {
    let family = families.table_family();
    let mut s = String::new();
    for (chain, priority, hook, stage) in stage_chains() {
        let _ = writeln!(
            s,
            "table {family} {TABLE} {{\n  chain {chain} {{\n    type filter hook {hook} priority {priority}; policy accept;\n  }}\n}}"
        );
        if on {
            let _ = writeln!(
                s,
                "flush chain {family} {TABLE} {chain}\nadd rule {family} {TABLE} {chain} jump {stage}"
            );
        } else {
            let _ = writeln!(
                s,
                "flush chain {family} {TABLE} {chain}\ndelete chain {family} {TABLE} {chain}"
            );
        }
    }
    s
}

/// The command that removes the table (when counting is switched off).
pub fn delete_script(families: Families) -> String {
    let family = families.table_family();
    format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n")
}

/// What a set's element counts: an address, with protocol and port for the service keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreatorId {
    pub address: IpAddr,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
}

/// One set's reading: each element's count, sorted by id, and the overflow counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetReading {
    pub elements: Vec<(CreatorId, u64)>,
    pub uncounted: u64,
}

/// One listing of the table, with the kernel's drop statistic read beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub total: u64,
    pub sets: BTreeMap<CreatorKey, SetReading>,
    /// Per source: packets that could start a flow, before conntrack.
    pub attempts: SetReading,
    /// Per source: the same packets, after conntrack let them through.
    pub passed: SetReading,
    /// conntrack's per-CPU `drop` counters (`unsigned int`s that wrap), by CPU.
    pub kernel_drops: BTreeMap<u32, u32>,
    /// The drops since the table was installed, split by whether who is turned away was being
    /// counted when they happened (kept by [`super::window::History::push`]).
    pub drops_watched: u64,
    pub drops_unwatched: u64,
}

/// Why a listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("nft's output is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("nft's output has no `nftables` array")]
    Shape,
    #[error("the table has no {0}")]
    Missing(String),
}

/// Parses `nft -j list table <family> ctguard_creators`: both families' sets of one key add up
/// to one [`SetReading`]. Elements whose value does not parse are skipped (nft printed something
/// this parser does not know; they are counted in no list).
pub fn parse_listing(json: &str, families: Families) -> Result<Reading, ListingError> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let items = value["nftables"].as_array().ok_or(ListingError::Shape)?;
    let mut counters: BTreeMap<&str, u64> = BTreeMap::new();
    let mut sets: BTreeMap<&str, &serde_json::Value> = BTreeMap::new();
    for item in items {
        if let Some(counter) = item.get("counter") {
            if let Some(name) = counter["name"].as_str() {
                counters.insert(name, counter["packets"].as_u64().unwrap_or_default());
            }
        } else if let Some(set) = item.get("set")
            && let Some(name) = set["name"].as_str()
        {
            sets.insert(name, set);
        }
    }
    let total = *counters
        .get(TOTAL_COUNTER)
        .ok_or_else(|| ListingError::Missing(format!("counter {TOTAL_COUNTER}")))?;
    let mut reading = Reading {
        total,
        ..Reading::default()
    };
    for set in CountingSet::all(families) {
        let name = set.name();
        let listed = sets
            .get(name.as_str())
            .ok_or_else(|| ListingError::Missing(format!("set {name}")))?;
        let uncounted = *counters
            .get(set.overflow_counter().as_str())
            .ok_or_else(|| ListingError::Missing(format!("counter {}", set.overflow_counter())))?;
        let into = reading.sets.entry(set.key).or_default();
        into.uncounted += uncounted;
        for element in listed["elem"].as_array().map_or(&[][..], Vec::as_slice) {
            if let Some(counted) = element_count(element) {
                into.elements.push(counted);
            }
        }
    }
    for stage in [Stage::Attempts, Stage::Passed] {
        for ipv6 in [false, true] {
            if ipv6 && !families.ipv6() {
                continue;
            }
            let name = stage.set(ipv6);
            let listed = sets
                .get(name.as_str())
                .ok_or_else(|| ListingError::Missing(format!("set {name}")))?;
            let overflow = stage.overflow_counter(ipv6);
            let uncounted = *counters
                .get(overflow.as_str())
                .ok_or_else(|| ListingError::Missing(format!("counter {overflow}")))?;
            let into = match stage {
                Stage::Attempts => &mut reading.attempts,
                Stage::Passed => &mut reading.passed,
            };
            into.uncounted += uncounted;
            for element in listed["elem"].as_array().map_or(&[][..], Vec::as_slice) {
                if let Some(counted) = element_count(element) {
                    into.elements.push(counted);
                }
            }
        }
    }
    for set in reading
        .sets
        .values_mut()
        .chain([&mut reading.attempts, &mut reading.passed])
    {
        set.elements.sort_unstable_by_key(|(id, _)| *id);
    }
    Ok(reading)
}

/// `{"elem": {"val": V, "expires": .., "counter": {"packets": P, ..}}}`, V an address or
/// `{"concat": [address, "udp", 53]}`.
fn element_count(element: &serde_json::Value) -> Option<(CreatorId, u64)> {
    let inner = element.get("elem")?;
    let packets = inner["counter"]["packets"].as_u64()?;
    let value = &inner["val"];
    let id = match value.get("concat").and_then(|c| c.as_array()) {
        Some(parts) => {
            let [address, protocol, port] = parts.as_slice() else {
                return None;
            };
            CreatorId {
                address: IpAddr::from_str(address.as_str()?).ok()?,
                protocol: Some(match protocol.as_str()? {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => return None,
                }),
                port: Some(u16::try_from(port.as_u64()?).ok()?),
            }
        }
        None => CreatorId {
            address: IpAddr::from_str(value.as_str()?).ok()?,
            protocol: None,
            port: None,
        },
    };
    Some((id, packets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_counts_each_created_entry_once_after_conntrack() {
        let script = script(Families::Both, 4096, false);
        assert!(
            script.starts_with("table inet ctguard_creators\ndelete table inet ctguard_creators\n")
        );
        assert_eq!(
            script
                .matches("ct state new ct status ! confirmed jump count")
                .count(),
            2
        );
        assert!(script.contains("type filter hook prerouting priority -199;"));
        assert!(script.contains("type filter hook output priority -199;"));
        assert_eq!(script.matches("size 4096;").count(), 8 + 4, "{script}");
        assert!(
            script.contains("meta nfproto vmap { ipv4 : goto v4_source, ipv6 : goto v6_source }")
        );
        // Each set's chain goes on to the next set, also when its set is full.
        assert!(script.contains(
            "  chain v4_source {\n    update @v4_source { ip saddr counter } goto v4_destination\n    counter name \"v4_source_uncounted\" goto v4_destination\n  }"
        ));
        assert!(script.contains(
            "update @v4_destination_source_port { ip daddr . meta l4proto . th sport counter } goto v4_source_destination_port"
        ));
        // Only TCP and UDP reach the sets keyed by a port.
        assert!(script.contains(
            "  chain v6_destination {\n    update @v6_destination { ip6 daddr counter } goto v6_ports\n    counter name \"v6_destination_uncounted\" goto v6_ports\n  }"
        ));
        assert!(script.contains(
            "  chain v6_ports {\n    meta l4proto vmap { tcp : goto v6_destination_source_port, udp : goto v6_destination_source_port }\n  }"
        ));
        // The path ends in the last set's chain.
        assert!(script.contains(
            "  chain v6_source_destination_port {\n    update @v6_source_destination_port { ip6 saddr . meta l4proto . th dport counter } return\n    counter name \"v6_source_destination_port_uncounted\"\n  }"
        ));
        for set in CountingSet::all(Families::Both) {
            assert!(
                !script.contains(&format!("jump {}", set.name())),
                "no jump per set: {script}"
            );
        }
    }

    #[test]
    fn attempts_are_counted_between_the_blocks_and_conntrack_and_again_right_after_it() {
        let script = script(Families::Both, 4096, true);
        assert_eq!(
            script.matches("priority -250; policy accept;").count(),
            2,
            "{script}"
        );
        assert_eq!(
            script
                .matches("add rule inet ctguard_creators prerouting_before jump attempts")
                .count(),
            1
        );
        assert_eq!(
            script
                .matches("add rule inet ctguard_creators output_after jump passed")
                .count(),
            1
        );
        assert_eq!(
            script
                .matches("meta l4proto tcp tcp flags & (syn | ack) != syn return")
                .count(),
            2,
            "only packets that could start a flow, in both stages: {script}"
        );
        assert!(script.contains("update @v6_attempts { ip6 saddr counter } return"));
        assert!(script.contains("update @v4_passed { ip saddr counter } return"));
        assert!(
            !script.contains("@v4_attempts update"),
            "a lookup would count twice: {script}"
        );
    }

    #[test]
    fn the_turned_away_stages_are_hooked_in_only_while_watching() {
        let quiet = script(Families::Both, 4096, false);
        assert!(!quiet.contains("priority -250"), "{quiet}");
        assert!(!quiet.contains("jump attempts"), "{quiet}");
        assert!(!quiet.contains("jump passed"), "{quiet}");
        assert!(
            quiet.contains("set v4_attempts {"),
            "the sets stay, with their counts"
        );
        let off = watch_script(Families::Ipv4, false);
        for chain in [
            "prerouting_before",
            "prerouting_after",
            "output_before",
            "output_after",
        ] {
            assert!(
                off.contains(&format!(
                    "flush chain ip ctguard_creators {chain}\ndelete chain ip ctguard_creators {chain}\n"
                )),
                "{off}"
            );
        }
        assert!(!off.contains("add rule"), "{off}");
        let on = watch_script(Families::Ipv4, true);
        assert_eq!(on.matches("add rule").count(), 4, "{on}");
        assert_eq!(on.matches("flush chain").count(), 4, "idempotent: {on}");
    }

    #[test]
    fn ipv4_only_counting_is_a_table_ip_without_ipv6_sets() {
        let script = script(Families::Ipv4, 256, true);
        assert!(script.starts_with("table ip ctguard_creators\n"));
        assert!(!script.contains("v6_"), "{script}");
        assert!(!script.contains("ip6 "), "{script}");
        assert!(
            !script.contains("nfproto"),
            "nft refuses it in a table ip: {script}"
        );
        assert!(script.contains("    goto v4_source\n"), "{script}");
        assert_eq!(
            delete_script(Families::Ipv4),
            "table ip ctguard_creators\ndelete table ip ctguard_creators\n"
        );
    }

    /// What nft 1.0.6 prints (its JSON shape, trimmed to two sets of the IPv4-only table).
    fn listing(extra_sets: &str) -> String {
        format!(
            r#"{{"nftables": [{{"metainfo": {{"version": "1.0.6", "json_schema_version": 1}}}},
            {{"table": {{"family": "ip", "name": "ctguard_creators", "handle": 1}}}},
            {{"counter": {{"family": "ip", "name": "new_flows", "table": "ctguard_creators", "handle": 2, "packets": 21, "bytes": 609}}}},
            {{"counter": {{"family": "ip", "name": "v4_source_uncounted", "table": "ctguard_creators", "handle": 4, "packets": 11, "bytes": 319}}}},
            {{"counter": {{"family": "ip", "name": "v4_destination_uncounted", "table": "ctguard_creators", "packets": 0, "bytes": 0}}}},
            {{"counter": {{"family": "ip", "name": "v4_destination_source_port_uncounted", "table": "ctguard_creators", "packets": 0, "bytes": 0}}}},
            {{"counter": {{"family": "ip", "name": "v4_source_destination_port_uncounted", "table": "ctguard_creators", "packets": 0, "bytes": 0}}}},
            {{"counter": {{"family": "ip", "name": "v4_attempts_uncounted", "table": "ctguard_creators", "packets": 9, "bytes": 0}}}},
            {{"counter": {{"family": "ip", "name": "v4_passed_uncounted", "table": "ctguard_creators", "packets": 4, "bytes": 0}}}},
            {{"set": {{"family": "ip", "name": "v4_attempts", "table": "ctguard_creators", "type": "ipv4_addr",
              "elem": [{{"elem": {{"val": "203.0.113.66", "counter": {{"packets": 500, "bytes": 1}}}}}}]}}}},
            {{"set": {{"family": "ip", "name": "v4_passed", "table": "ctguard_creators", "type": "ipv4_addr",
              "elem": [{{"elem": {{"val": "203.0.113.66", "counter": {{"packets": 120, "bytes": 1}}}}}}]}}}},
            {{"set": {{"family": "ip", "name": "v4_source", "table": "ctguard_creators", "type": "ipv4_addr", "size": 4, "flags": ["timeout"], "timeout": 600,
              "elem": [{{"elem": {{"val": "10.99.0.12", "expires": 597, "counter": {{"packets": 2, "bytes": 58}}}}}},
                       {{"elem": {{"val": "10.99.0.11", "expires": 597, "counter": {{"packets": 1, "bytes": 29}}}}}}]}}}},
            {{"set": {{"family": "ip", "name": "v4_destination_source_port", "table": "ctguard_creators", "type": ["ipv4_addr", "inet_proto", "inet_service"], "size": 4,
              "elem": [{{"elem": {{"val": {{"concat": ["10.99.0.2", "udp", 53]}}, "expires": 599, "counter": {{"packets": 7, "bytes": 29}}}}}}]}}}}
            {extra_sets}]}}"#
        )
    }

    #[test]
    fn a_listing_reads_as_counts_per_key() {
        let extra = r#",{"set": {"family": "ip", "name": "v4_destination", "table": "ctguard_creators", "type": "ipv4_addr"}},
            {"set": {"family": "ip", "name": "v4_source_destination_port", "table": "ctguard_creators", "type": "ipv4_addr",
              "elem": [{"elem": {"val": {"concat": ["10.99.0.11", "icmp", 0]}, "counter": {"packets": 3, "bytes": 1}}}]}}"#;
        let reading = parse_listing(&listing(extra), Families::Ipv4).expect("parses");
        assert_eq!(reading.total, 21);
        let sources = &reading.sets[&CreatorKey::Source];
        assert_eq!(sources.uncounted, 11);
        let ids: Vec<_> = sources
            .elements
            .iter()
            .map(|(id, n)| (id.address.to_string(), *n))
            .collect();
        assert_eq!(
            ids,
            [("10.99.0.11".to_owned(), 1), ("10.99.0.12".to_owned(), 2)],
            "sorted by id"
        );
        let reflection = &reading.sets[&CreatorKey::DestinationSourcePort].elements;
        assert_eq!(
            reflection.as_slice(),
            [(
                CreatorId {
                    address: "10.99.0.2".parse().expect("an address"),
                    protocol: Some(Protocol::Udp),
                    port: Some(53)
                },
                7
            )]
        );
        assert!(
            reading.sets[&CreatorKey::Destination].elements.is_empty(),
            "an empty set has no elem"
        );
        assert!(
            reading.sets[&CreatorKey::SourceDestinationPort]
                .elements
                .is_empty(),
            "a protocol outside tcp/udp is skipped, not misread"
        );
    }

    #[test]
    fn a_listing_without_one_of_the_sets_is_an_error_not_zero() {
        let error = parse_listing(&listing(""), Families::Ipv4).expect_err("two sets are missing");
        assert!(
            matches!(error, ListingError::Missing(ref what) if what == "set v4_destination"),
            "{error}"
        );
        assert!(matches!(
            parse_listing("[]", Families::Ipv4),
            Err(ListingError::Shape)
        ));
        assert!(matches!(
            parse_listing("not json", Families::Ipv4),
            Err(ListingError::NotJson(_))
        ));
    }
}
