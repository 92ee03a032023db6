//! The text of a trace's table `ctguard_trace` and the parse of its listing.
//!
//! The table is of the filter's own family (`ip` or `ip6`), so a trace turns on conntrack for no
//! family the host did not track already. Its filter is the one element of an interval set whose
//! timeout is the trace's length: at the deadline the kernel stops matching by itself, whatever
//! became of the helper. Matching new flows (counted once each, right after conntrack, as the
//! creators are) go to three dynamic sets: by source, by destination, by destination port.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr, str::FromStr};

use ctguard_protocol::{
    BlockTarget, Protocol,
    trace::{MAX_TRACE_ROWS, TraceCount},
};

use crate::firewall::ruleset::{Element, SetKind};

pub const TABLE: &str = "ctguard_trace";

/// Each counting set's size: a trace is for one pattern, the largest lists are its first rows.
pub const SET_SIZE: u32 = 4096;
const LISTS: [&str; 3] = ["sources", "destinations", "destination_ports"];

fn family(ipv6: bool) -> &'static str {
    if ipv6 { "ip6" } else { "ip" }
}

/// Replaces any trace table of the filter's family with one that counts `filter` for
/// `seconds`.
pub fn script(filter: &BlockTarget, seconds: u32) -> String {
    let ipv6 = !filter.is_ipv4();
    let family = family(ipv6);
    let (address, prefix) = if ipv6 {
        ("ipv6_addr", "ip6")
    } else {
        ("ipv4_addr", "ip")
    };
    let kind = SetKind::of(filter);
    let element = Element {
        target: *filter,
        timeout_secs: u64::from(seconds),
    };
    let mut s = format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n");
    let _ = writeln!(s, "table {family} {TABLE} {{");
    let _ = writeln!(
        s,
        "  set filter {{\n    type {}; flags interval, timeout;\n    elements = {{ {} timeout {seconds}s }}\n  }}",
        kind.type_expr(),
        element.canonical()
    );
    for (list, type_expr) in LISTS
        .iter()
        .zip([address, address, "inet_proto . inet_service"])
    {
        let _ = writeln!(
            s,
            "  set {list} {{\n    type {type_expr}; size {SET_SIZE}; flags dynamic, timeout; timeout {seconds}s;\n  }}\n  counter {list}_uncounted {{\n  }}"
        );
    }
    s.push_str("  counter matched {\n  }\n");
    for hook in ["prerouting", "output"] {
        let _ = writeln!(
            s,
            "  chain {hook} {{\n    type filter hook {hook} priority -199; policy accept;\n    ct state new ct status ! confirmed {} @filter jump record\n  }}",
            kind.key_match()
        );
    }
    s.push_str(
        "  chain record {\n    counter name \"matched\"\n    jump sources\n    jump destinations\n    meta l4proto { tcp, udp } jump destination_ports\n  }\n",
    );
    for (list, key) in LISTS.iter().zip([
        format!("{prefix} saddr"),
        format!("{prefix} daddr"),
        "meta l4proto . th dport".to_owned(),
    ]) {
        let _ = writeln!(
            s,
            "  chain {list} {{\n    update @{list} {{ {key} counter }} return\n    counter name \"{list}_uncounted\"\n  }}"
        );
    }
    s.push_str("}\n");
    s
}

/// Removes the trace table of either family; succeeds when there is none.
pub fn delete_script() -> String {
    ["ip", "ip6"]
        .iter()
        .map(|family| format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n"))
        .collect()
}

/// What a listing says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub matched: u64,
    pub sources: Vec<TraceCount>,
    pub destinations: Vec<TraceCount>,
    pub destination_ports: Vec<TraceCount>,
    pub uncounted_sources: u64,
}

/// Parses `nft -j list table ip|ip6 ctguard_trace`: each list sorted, largest first, cut to
/// [`MAX_TRACE_ROWS`].
pub fn parse_listing(json: &str) -> Result<Counts, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = value["nftables"]
        .as_array()
        .ok_or("no `nftables` array in nft's output")?;
    let mut counters: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lists: BTreeMap<&str, Vec<TraceCount>> = BTreeMap::new();
    for item in items {
        if let Some(counter) = item.get("counter")
            && let Some(name) = counter["name"].as_str()
        {
            counters.insert(name, counter["packets"].as_u64().unwrap_or_default());
        } else if let Some(set) = item.get("set")
            && let Some(name) = set["name"].as_str()
            && LISTS.contains(&name)
        {
            let rows = set["elem"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(row)
                .collect();
            lists.insert(name, rows);
        }
    }
    let mut take = |name: &str| {
        let mut rows = lists.remove(name).unwrap_or_default();
        rows.sort_unstable_by(|a, b| {
            b.new_flows
                .cmp(&a.new_flows)
                .then((a.address, a.protocol, a.port).cmp(&(b.address, b.protocol, b.port)))
        });
        rows.truncate(MAX_TRACE_ROWS);
        rows
    };
    Ok(Counts {
        matched: *counters.get("matched").ok_or("no counter matched")?,
        sources: take("sources"),
        destinations: take("destinations"),
        destination_ports: take("destination_ports"),
        uncounted_sources: counters
            .get("sources_uncounted")
            .copied()
            .unwrap_or_default(),
    })
}

/// `{"elem": {"val": V, "counter": {"packets": P}}}`, V an address or `{"concat": ["udp", 53]}`.
fn row(element: &serde_json::Value) -> Option<TraceCount> {
    let inner = element.get("elem")?;
    let new_flows = inner["counter"]["packets"].as_u64()?;
    let value = &inner["val"];
    Some(match value.get("concat").and_then(|c| c.as_array()) {
        Some(parts) => {
            let [protocol, port] = parts.as_slice() else {
                return None;
            };
            TraceCount {
                address: None,
                protocol: Some(match protocol.as_str()? {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => return None,
                }),
                port: Some(u16::try_from(port.as_u64()?).ok()?),
                new_flows,
            }
        }
        None => TraceCount {
            address: Some(IpAddr::from_str(value.as_str()?).ok()?),
            protocol: None,
            port: None,
            new_flows,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> BlockTarget {
        text.parse().expect("a target")
    }

    #[test]
    fn the_filter_is_one_element_that_expires_in_the_kernel() {
        let script = script(&target("udp to 198.51.100.10 dport 53"), 300);
        assert!(script.starts_with("table ip ctguard_trace\ndelete table ip ctguard_trace\n"));
        assert!(
            script.contains("elements = { 198.51.100.10/32 . udp . 53 timeout 300s }"),
            "{script}"
        );
        assert!(script.contains(
            "ct state new ct status ! confirmed ip daddr . meta l4proto . th dport @filter jump record"
        ));
        assert!(
            script.contains("update @destination_ports { meta l4proto . th dport counter } return")
        );
        assert!(!script.contains("log"), "nothing goes to syslog: {script}");
    }

    #[test]
    fn an_ipv6_filter_is_a_table_ip6() {
        let script = script(&target("from 2001:db8::/32"), 60);
        assert!(script.starts_with("table ip6 ctguard_trace\n"), "{script}");
        assert!(script.contains("update @sources { ip6 saddr counter } return"));
        assert!(script.contains("ip6 saddr @filter jump record"), "{script}");
    }

    #[test]
    fn a_listing_reads_largest_first() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"counter": {"name": "matched", "packets": 12}},
            {"counter": {"name": "sources_uncounted", "packets": 2}},
            {"set": {"name": "filter", "elem": [{"elem": {"val": {"prefix": {"addr": "198.51.100.10", "len": 32}}}}]}},
            {"set": {"name": "sources", "elem": [
                {"elem": {"val": "203.0.113.10", "counter": {"packets": 3}}},
                {"elem": {"val": "203.0.113.66", "counter": {"packets": 7}}}]}},
            {"set": {"name": "destination_ports", "elem": [
                {"elem": {"val": {"concat": ["udp", 53]}, "counter": {"packets": 10}}}]}}]}"#;
        let counts = parse_listing(json).expect("parses");
        assert_eq!(counts.matched, 12);
        assert_eq!(counts.uncounted_sources, 2);
        let sources: Vec<_> = counts
            .sources
            .iter()
            .map(|c| (c.address.expect("an address").to_string(), c.new_flows))
            .collect();
        assert_eq!(
            sources,
            [
                ("203.0.113.66".to_owned(), 7),
                ("203.0.113.10".to_owned(), 3)
            ]
        );
        assert_eq!(
            (
                counts.destination_ports[0].protocol,
                counts.destination_ports[0].port
            ),
            (Some(Protocol::Udp), Some(53))
        );
        assert!(counts.destinations.is_empty());
        assert!(
            parse_listing(r#"{"nftables": []}"#).is_err(),
            "no counter: an error, not zeros"
        );
    }
}
