//! The text of the counting table `ctguard_creators` and the parse of its listing: one dynamic
//! set per (address family, [`CreatorKey`]), each element counting the entries its key created,
//! and one overflow counter per set for what a full set could not hold.
//!
//! The base chains hook prerouting and output at priority 0, after conntrack (-200) made the
//! entry, and match `ct state new ct status ! confirmed`: only the first packet of a flow sees
//! its entry unconfirmed (conntrack confirms it at the last hook), so each created entry counts
//! once however many packets follow before a reply. Entries a later rule drops before they are
//! confirmed count too: they were created. Blocked traffic never counts: the blocks table drops
//! it at raw priority, before conntrack.
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
    fn table_family(self) -> &'static str {
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

/// The whole table as one `nft -f` transaction that replaces whatever table was there (its
/// counts start again from zero).
pub fn script(families: Families, capacity: u32) -> String {
    let family = families.table_family();
    let sets = CountingSet::all(families);
    let mut s = format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n");
    let _ = writeln!(s, "table {family} {TABLE} {{");
    let _ = writeln!(s, "  counter {TOTAL_COUNTER} {{\n  }}");
    for set in &sets {
        let _ = writeln!(
            s,
            "  set {} {{\n    type {}; size {capacity}; flags dynamic, timeout; timeout {ELEMENT_TIMEOUT_SECS}s;\n  }}",
            set.name(),
            set.type_expr()
        );
        let _ = writeln!(s, "  counter {} {{\n  }}", set.overflow_counter());
    }
    for hook in ["prerouting", "output"] {
        let _ = writeln!(
            s,
            "  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n    ct state new ct status ! confirmed jump count\n  }}"
        );
    }
    s.push_str("  chain count {\n");
    let _ = writeln!(s, "    counter name \"{TOTAL_COUNTER}\"");
    for set in &sets {
        // A `table ip` sees only IPv4, and nft refuses `meta nfproto` there.
        let family = match families {
            Families::Both if set.ipv6 => "meta nfproto ipv6 ",
            Families::Both => "meta nfproto ipv4 ",
            Families::Ipv4 => "",
        };
        let only_ports = if has_service(set.key) {
            "meta l4proto { tcp, udp } "
        } else {
            ""
        };
        let _ = writeln!(s, "    {family}{only_ports}jump {}", set.name());
    }
    s.push_str("  }\n");
    for set in &sets {
        let _ = writeln!(
            s,
            "  chain {name} {{\n    update @{name} {{ {key} counter }} return\n    counter name \"{overflow}\"\n  }}",
            name = set.name(),
            key = set.key_expr(),
            overflow = set.overflow_counter()
        );
    }
    s.push_str("}\n");
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

/// One listing of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub total: u64,
    pub sets: BTreeMap<CreatorKey, SetReading>,
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
        sets: BTreeMap::new(),
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
    for set in reading.sets.values_mut() {
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
        let script = script(Families::Both, 4096);
        assert!(
            script.starts_with("table inet ctguard_creators\ndelete table inet ctguard_creators\n")
        );
        assert_eq!(
            script
                .matches("ct state new ct status ! confirmed jump count")
                .count(),
            2
        );
        assert!(script.contains("type filter hook prerouting priority 0;"));
        assert!(script.contains("type filter hook output priority 0;"));
        assert_eq!(script.matches("size 4096;").count(), 8, "{script}");
        assert!(script.contains(
            "update @v4_destination_source_port { ip daddr . meta l4proto . th sport counter } return"
        ));
        assert!(script.contains(
            "meta nfproto ipv6 meta l4proto { tcp, udp } jump v6_source_destination_port"
        ));
        assert!(script.contains("counter name \"v6_source_uncounted\""));
    }

    #[test]
    fn ipv4_only_counting_is_a_table_ip_without_ipv6_sets() {
        let script = script(Families::Ipv4, 256);
        assert!(script.starts_with("table ip ctguard_creators\n"));
        assert!(!script.contains("v6_"), "{script}");
        assert!(!script.contains("ip6 "), "{script}");
        assert!(!script.contains("nfproto"), "nft refuses it in a table ip: {script}");
        assert!(script.contains("    jump v4_source\n"), "{script}");
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
