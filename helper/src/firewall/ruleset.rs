//! The text of `table inet ctguard`: one set per kind of target (address family, which address,
//! protocol, which port), one drop rule per set in the prerouting chain and, for the sets that
//! match a destination, one in the output chain (a `to` block also stops what the host itself
//! sends), both at raw priority, before conntrack makes an entry; elements with their remaining
//! lifetimes; every set counts what each element's rule dropped. Drift compares the chains'
//! hooks, priorities and policies and every rule's body with what the helper wrote.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
};

use ipnet::IpNet;

use ctguard_protocol::{BlockTarget, Side};

pub const TABLE: &str = "ctguard";

/// The table's base chains: name and hook (the same word), all `type filter`, priority raw
/// (-300), policy accept.
pub const CHAINS: [&str; 2] = ["prerouting", "output"];
const RAW_PRIORITY: i64 = -300;

/// The shape of a target, which decides its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetKind {
    pub ipv6: bool,
    /// Which address of the packet lies in the network.
    pub address: Side,
    pub protocol: bool,
    /// Which port, when the target names one.
    pub port: Option<Side>,
}

impl SetKind {
    pub fn of(target: &BlockTarget) -> Self {
        Self {
            ipv6: !target.is_ipv4(),
            address: target.direction(),
            protocol: target.protocol().is_some(),
            port: target.port().map(|p| p.side()),
        }
    }

    /// Every kind, so every set exists whether or not it holds elements.
    pub fn all() -> Vec<Self> {
        let mut kinds = Vec::new();
        for ipv6 in [false, true] {
            for address in [Side::Source, Side::Destination] {
                for (protocol, port) in [
                    (false, None),
                    (true, None),
                    (true, Some(Side::Source)),
                    (true, Some(Side::Destination)),
                ] {
                    kinds.push(Self {
                        ipv6,
                        address,
                        protocol,
                        port,
                    });
                }
            }
        }
        kinds
    }

    pub fn name(&self) -> String {
        let mut name = String::from(if self.ipv6 { "v6_" } else { "v4_" });
        name.push_str(side_word(self.address, "saddr", "daddr"));
        if self.protocol {
            name.push_str("_proto");
        }
        if let Some(port) = self.port {
            name.push('_');
            name.push_str(side_word(port, "sport", "dport"));
        }
        name
    }

    /// The set's element type, e.g. `ipv4_addr . inet_proto . inet_service`.
    pub fn type_expr(&self) -> String {
        let mut ty = String::from(if self.ipv6 { "ipv6_addr" } else { "ipv4_addr" });
        if self.protocol {
            ty.push_str(" . inet_proto");
        }
        if self.port.is_some() {
            ty.push_str(" . inet_service");
        }
        ty
    }

    /// The chains this set's rule is in: every set in prerouting; a set that matches the
    /// destination also in output, where the host's own packets pass.
    fn chains(&self) -> &'static [&'static str] {
        match self.address {
            Side::Source => &CHAINS[..1],
            Side::Destination => &CHAINS,
        }
    }

    fn rule(&self) -> String {
        format!("{} @{} drop", self.key_match(), self.name())
    }

    /// What of a packet the set's elements are matched against, e.g. `ip saddr . meta l4proto
    /// . th dport` (the trace's filter matches the same way).
    pub fn key_match(&self) -> String {
        let mut rule = format!(
            "{} {}",
            if self.ipv6 { "ip6" } else { "ip" },
            side_word(self.address, "saddr", "daddr")
        );
        if self.protocol {
            rule.push_str(" . meta l4proto");
        }
        if let Some(port) = self.port {
            rule.push_str(" . th ");
            rule.push_str(side_word(port, "sport", "dport"));
        }
        rule
    }
}

fn side_word(side: Side, source: &'static str, destination: &'static str) -> &'static str {
    match side {
        Side::Source => source,
        Side::Destination => destination,
    }
}

/// What one element's drop rule matched: every set is declared with `counter`, so the kernel
/// counts per element.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// One set element: a target and how many more seconds it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    pub target: BlockTarget,
    pub timeout_secs: u64,
}

impl Element {
    /// The element as drift detection compares it: `192.0.2.7/32 . udp . 53`.
    pub fn canonical(&self) -> String {
        self.value()
    }

    fn value(&self) -> String {
        let t = &self.target;
        let mut value = t.network().to_string();
        if let Some(protocol) = t.protocol() {
            value.push_str(" . ");
            value.push_str(protocol.as_str());
        }
        if let Some(port) = t.port() {
            let _ = write!(value, " . {}", port.port());
        }
        value
    }
}

/// The whole table as one `nft -f` transaction that replaces whatever table was there.
pub fn script(elements: &[Element]) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    let kinds = SetKind::all();
    for kind in &kinds {
        let _ = writeln!(
            s,
            "  set {} {{ type {}; flags interval, timeout; counter; }}",
            kind.name(),
            kind.type_expr()
        );
    }
    for chain in CHAINS {
        let _ = writeln!(
            s,
            "  chain {chain} {{\n    type filter hook {chain} priority raw; policy accept;"
        );
        for kind in kinds.iter().filter(|k| k.chains().contains(&chain)) {
            let _ = writeln!(s, "    {}", kind.rule());
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    let mut by_set: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for element in elements {
        by_set
            .entry(SetKind::of(&element.target).name())
            .or_default()
            .push(format!(
                "{} timeout {}s",
                element.value(),
                element.timeout_secs.max(1)
            ));
    }
    for (set, values) in by_set {
        let _ = writeln!(
            s,
            "add element inet {TABLE} {set} {{ {} }}",
            values.join(", ")
        );
    }
    s
}

/// A base chain as the kernel holds it: `type hook priority policy`, e.g.
/// `filter prerouting -300 accept`.
fn chain_shape(kind: &str, hook: &str, priority: i64, policy: &str) -> String {
    format!("{kind} {hook} {priority} {policy}")
}

/// What `nft -j list table inet ctguard` shows: the elements of each set (canonical form), each
/// base chain's shape, and each chain's rules written out as nft prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub elements: BTreeMap<String, BTreeSet<String>>,
    /// By set name and canonical element.
    pub counters: BTreeMap<(String, String), Counter>,
    /// By chain name: its shape (see [`chain_shape`]).
    pub chains: BTreeMap<String, String>,
    /// By chain name: its rules, sorted, e.g. `ip daddr @v4_daddr drop`.
    pub rules: BTreeMap<String, Vec<String>>,
}

/// An operand of a rule's match as nft writes it: `ip daddr`, `meta l4proto`, `th dport`, a
/// concatenation joined by ` . `, a set reference `@name`; anything else as its JSON.
fn operand_text(value: &serde_json::Value) -> String {
    if let Some(payload) = value.get("payload") {
        return format!(
            "{} {}",
            payload["protocol"].as_str().unwrap_or("?"),
            payload["field"].as_str().unwrap_or("?")
        );
    }
    if let Some(meta) = value.get("meta") {
        return format!("meta {}", meta["key"].as_str().unwrap_or("?"));
    }
    if let Some(parts) = value.get("concat").and_then(|c| c.as_array()) {
        return parts
            .iter()
            .map(operand_text)
            .collect::<Vec<_>>()
            .join(" . ");
    }
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    }
}

/// A rule's body as text, statement by statement: `ip daddr @v4_daddr drop`. A statement this
/// table never holds (a counter, a log, another verdict, another operator) shows as itself, so
/// a rule edited behind the helper's back never reads like one of its own.
fn rule_text(expr: &[serde_json::Value]) -> String {
    expr.iter()
        .map(|statement| match statement.get("match") {
            Some(matched) => {
                let op = matched["op"].as_str().unwrap_or("?");
                let left = operand_text(&matched["left"]);
                let right = operand_text(&matched["right"]);
                if op == "==" {
                    format!("{left} {right}")
                } else {
                    format!("{left} {op} {right}")
                }
            }
            None => match statement.as_object().and_then(|o| o.iter().next()) {
                Some((verdict, serde_json::Value::Null)) => verdict.clone(),
                Some((name, value)) => format!("{name} {value}"),
                None => statement.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One part of an element value in nft's JSON: an address, a prefix, a protocol name, a port.
fn canonical_part(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address).to_string(),
            Err(_) => text.clone(),
        }),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Object(object) => {
            if let Some(prefix) = object.get("prefix") {
                let address: IpAddr = prefix["addr"].as_str()?.parse().ok()?;
                let len = u8::try_from(prefix["len"].as_u64()?).ok()?;
                Some(IpNet::new(address, len).ok()?.to_string())
            } else if let Some(parts) = object.get("concat").and_then(|c| c.as_array()) {
                let parts: Option<Vec<String>> = parts.iter().map(canonical_part).collect();
                Some(parts?.join(" . "))
            } else {
                // A range or anything else this table never holds: shown as is, so it is drift.
                Some(value.to_string())
            }
        }
        _ => None,
    }
}

/// An element of a set listing, `{"elem": {"val": V, "timeout": .., "counter": {"packets": P,
/// "bytes": B}}}` or just `V`, with its counter when it has one.
fn canonical_element(element: &serde_json::Value) -> Option<(String, Option<Counter>)> {
    match element.get("elem") {
        Some(inner) => {
            let counter = inner.get("counter").map(|counter| Counter {
                packets: counter["packets"].as_u64().unwrap_or_default(),
                bytes: counter["bytes"].as_u64().unwrap_or_default(),
            });
            Some((canonical_part(&inner["val"])?, counter))
        }
        None => Some((canonical_part(element)?, None)),
    }
}

impl Observed {
    /// Parses nft's JSON listing of the table.
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let items = value["nftables"]
            .as_array()
            .ok_or("no `nftables` array in nft's output")?;
        let mut observed = Self::default();
        for item in items {
            if let Some(set) = item.get("set") {
                let name = set["name"].as_str().unwrap_or_default().to_owned();
                let mut elements = BTreeSet::new();
                for (element, counter) in set["elem"]
                    .as_array()
                    .map(|e| e.iter().filter_map(canonical_element).collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    if let Some(counter) = counter {
                        observed
                            .counters
                            .insert((name.clone(), element.clone()), counter);
                    }
                    elements.insert(element);
                }
                observed.elements.insert(name, elements);
            } else if let Some(chain) = item.get("chain") {
                let name = chain["name"].as_str().unwrap_or_default().to_owned();
                let shape = chain_shape(
                    chain["type"].as_str().unwrap_or("-"),
                    chain["hook"].as_str().unwrap_or("-"),
                    chain["prio"].as_i64().unwrap_or(0),
                    chain["policy"].as_str().unwrap_or("-"),
                );
                observed.rules.entry(name.clone()).or_default();
                observed.chains.insert(name, shape);
            } else if let Some(rule) = item.get("rule") {
                let chain = rule["chain"].as_str().unwrap_or_default().to_owned();
                let body = rule_text(rule["expr"].as_array().map_or(&[][..], Vec::as_slice));
                observed.rules.entry(chain).or_default().push(body);
            }
        }
        for rules in observed.rules.values_mut() {
            rules.sort();
        }
        Ok(observed)
    }

    /// What the kernel would show for exactly `elements` (tests and fakes).
    pub fn of(elements: &[Element]) -> Self {
        let kinds = SetKind::all();
        let rules = CHAINS
            .iter()
            .map(|chain| {
                let mut rules: Vec<String> = kinds
                    .iter()
                    .filter(|k| k.chains().contains(chain))
                    .map(SetKind::rule)
                    .collect();
                rules.sort();
                ((*chain).to_owned(), rules)
            })
            .collect();
        let mut observed = Self {
            counters: BTreeMap::new(),
            chains: CHAINS
                .iter()
                .map(|chain| {
                    let shape = chain_shape("filter", chain, RAW_PRIORITY, "accept");
                    ((*chain).to_owned(), shape)
                })
                .collect(),
            rules,
            elements: kinds.iter().map(|k| (k.name(), BTreeSet::new())).collect(),
        };
        for element in elements {
            let set = SetKind::of(&element.target).name();
            observed
                .counters
                .insert((set.clone(), element.canonical()), Counter::default());
            observed
                .elements
                .entry(set)
                .or_default()
                .insert(element.canonical());
        }
        observed
    }

    /// What the kernel counted for a target's element, if it holds one.
    pub fn dropped(&self, target: &BlockTarget) -> Option<Counter> {
        let element = Element {
            target: *target,
            timeout_secs: 0,
        };
        self.counters
            .get(&(SetKind::of(target).name(), element.canonical()))
            .copied()
    }

    /// The differences from what `expected` should produce, as readable lines (empty: none).
    /// Elements in `tolerated` (blocks about to expire) may be present or not.
    pub fn drift(&self, expected: &[Element], tolerated: &[Element]) -> Vec<String> {
        let mut drift = Vec::new();
        let want = Self::of(expected);
        for (chain, shape) in &want.chains {
            match self.chains.get(chain) {
                None => drift.push(format!("chain {chain} missing")),
                Some(have) if have != shape => {
                    drift.push(format!("chain {chain} is `{have}`, not `{shape}`"));
                }
                Some(_) => {}
            }
        }
        for chain in self.chains.keys().filter(|c| !want.chains.contains_key(*c)) {
            drift.push(format!("an unknown chain {chain}"));
        }
        for (chain, wanted) in &want.rules {
            let have = self.rules.get(chain).cloned().unwrap_or_default();
            for rule in wanted.iter().filter(|r| !have.contains(r)) {
                drift.push(format!("chain {chain} lacks `{rule}`"));
            }
            for rule in have.iter().filter(|r| !wanted.contains(r)) {
                drift.push(format!("chain {chain} holds an unknown rule `{rule}`"));
            }
            if have.len() != wanted.len() {
                drift.push(format!(
                    "chain {chain} holds {} rules, expected {}",
                    have.len(),
                    wanted.len()
                ));
            }
        }
        let tolerated: BTreeSet<String> = tolerated.iter().map(Element::canonical).collect();
        for (set, wanted) in &want.elements {
            let Some(have) = self.elements.get(set) else {
                drift.push(format!("set {set} missing"));
                continue;
            };
            for missing in wanted.difference(have) {
                drift.push(format!("set {set} lacks {missing}"));
            }
            for extra in have.difference(wanted) {
                if !tolerated.contains(extra) {
                    drift.push(format!("set {set} holds an unknown element {extra}"));
                }
            }
        }
        drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(text: &str, timeout_secs: u64) -> Element {
        Element {
            target: text.parse().expect(text),
            timeout_secs,
        }
    }

    /// `nft -j` of a table as the helper writes it, with `edit` applied to its rule bodies.
    fn listing(edit: impl Fn(&str, String) -> (String, String)) -> String {
        let want = Observed::of(&[]);
        let mut items = vec![r#"{"metainfo":{}}"#.to_owned()];
        for name in want.elements.keys() {
            items.push(format!(r#"{{"set":{{"name":"{name}","elem":[]}}}}"#));
        }
        for chain in CHAINS {
            let rules = want.rules[chain].clone();
            items.push(format!(
                r#"{{"chain":{{"name":"{chain}","type":"filter","hook":"{chain}","prio":-300,"policy":"accept"}}}}"#
            ));
            for rule in rules {
                let (chain_name, body) = edit(chain, rule);
                // A body written back as nft's JSON: the operands, the set, the verdict.
                let mut words: Vec<&str> = body.split(' ').collect();
                let verdict = words.pop().expect("a verdict");
                let set = words.pop().expect("a set");
                let left: Vec<String> = words
                    .join(" ")
                    .split(" . ")
                    .map(|operand| {
                        let (protocol, field) = operand.split_once(' ').expect("two words");
                        if protocol == "meta" {
                            format!(r#"{{"meta":{{"key":"{field}"}}}}"#)
                        } else {
                            format!(
                                r#"{{"payload":{{"protocol":"{protocol}","field":"{field}"}}}}"#
                            )
                        }
                    })
                    .collect();
                let left = if left.len() == 1 {
                    left[0].clone()
                } else {
                    format!(r#"{{"concat":[{}]}}"#, left.join(","))
                };
                items.push(format!(
                    r#"{{"rule":{{"chain":"{chain_name}","expr":[{{"match":{{"op":"==","left":{left},"right":"{set}"}}}},{{"{verdict}":null}}]}}}}"#
                ));
            }
        }
        format!(r#"{{"nftables":[{}]}}"#, items.join(","))
    }

    #[test]
    fn the_table_as_written_shows_no_drift_and_an_edited_rule_or_policy_does() {
        let intact =
            Observed::parse(&listing(|chain, rule| (chain.to_owned(), rule))).expect("parses");
        assert_eq!(intact.drift(&[], &[]), Vec::<String>::new());

        // The same number of rules, one of them now accepting instead of dropping.
        let accepting = Observed::parse(&listing(|chain, rule| {
            let rule = if rule == "ip daddr @v4_daddr drop" {
                "ip daddr @v4_daddr accept".to_owned()
            } else {
                rule
            };
            (chain.to_owned(), rule)
        }))
        .expect("parses");
        let drift = accepting.drift(&[], &[]);
        assert!(
            drift.contains(
                &"chain output holds an unknown rule `ip daddr @v4_daddr accept`".to_owned()
            ),
            "{drift:?}"
        );
        assert!(drift.contains(&"chain output lacks `ip daddr @v4_daddr drop`".to_owned()));

        // A rule matching the wrong side against a set of the same type.
        let swapped = Observed::parse(&listing(|chain, rule| {
            (
                chain.to_owned(),
                rule.replace("ip saddr @v4_saddr drop", "ip daddr @v4_saddr drop"),
            )
        }))
        .expect("parses");
        assert!(
            swapped
                .drift(&[], &[])
                .contains(&"chain prerouting lacks `ip saddr @v4_saddr drop`".to_owned())
        );

        // A policy turned to drop (every packet of the host) is drift too.
        let json = listing(|chain, rule| (chain.to_owned(), rule)).replacen(
            r#""policy":"accept""#,
            r#""policy":"drop""#,
            1,
        );
        let drift = Observed::parse(&json).expect("parses").drift(&[], &[]);
        assert!(
            drift.contains(&"chain prerouting is `filter prerouting -300 drop`, not `filter prerouting -300 accept`".to_owned()),
            "{drift:?}"
        );
    }

    #[test]
    fn sets_are_named_by_shape_and_distinct() {
        let names: std::collections::BTreeSet<String> =
            SetKind::all().iter().map(SetKind::name).collect();
        assert_eq!(names.len(), 16);
        let seed = SetKind::of(&"udp from 50.2.6.12 sport 53".parse().expect("target"));
        assert_eq!(seed.name(), "v4_saddr_proto_sport");
        assert_eq!(
            seed.rule(),
            "ip saddr . meta l4proto . th sport @v4_saddr_proto_sport drop"
        );
        assert_eq!(seed.type_expr(), "ipv4_addr . inet_proto . inet_service");
        let v6 = SetKind::of(&"to 2001:db8::/48".parse().expect("target"));
        assert_eq!(v6.rule(), "ip6 daddr @v6_daddr drop");
    }

    #[test]
    fn the_script_replaces_the_table_and_adds_elements_with_their_timeouts() {
        let script = script(&[
            element("udp from 50.2.6.12 sport 53", 3600),
            element("from 203.0.113.0/24", 0),
            element("from 192.0.2.7", 60),
        ]);
        assert!(
            script.starts_with(
                "table inet ctguard\ndelete table inet ctguard\ntable inet ctguard {\n"
            )
        );
        assert!(script.contains("type filter hook prerouting priority raw; policy accept;"));
        assert!(script.contains("type filter hook output priority raw; policy accept;"));
        let output = &script[script.find("chain output").expect("an output chain")..];
        let output = &output[..output.find('}').expect("closed")];
        assert!(output.contains("ip daddr @v4_daddr drop"), "{output}");
        assert!(!output.contains("saddr"), "only destination sets: {output}");
        assert!(
            script.contains("set v4_saddr { type ipv4_addr; flags interval, timeout; counter; }")
        );
        assert!(script.contains(
            "add element inet ctguard v4_saddr_proto_sport { 50.2.6.12/32 . udp . 53 timeout 3600s }"
        ));
        assert!(script.contains(
            "add element inet ctguard v4_saddr { 203.0.113.0/24 timeout 1s, 192.0.2.7/32 timeout 60s }"
        ));
    }

    #[test]
    fn drift_is_reported_per_element() {
        // The shapes nft 1.0.6 prints: a plain address, a prefix, a concatenation.
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"ctguard"}},
            {"set":{"name":"v4_saddr","elem":[{"elem":{"val":"192.0.2.7","timeout":60,"expires":59}},
                {"elem":{"val":{"prefix":{"addr":"198.51.100.0","len":24}},"timeout":60}}]}},
            {"set":{"name":"v4_saddr_proto_sport","elem":[{"elem":{"val":{"concat":["50.2.6.12","udp",53]},"timeout":3600,
                "counter":{"packets":41,"bytes":2870}}}]}},
            {"chain":{"name":"prerouting","type":"filter","hook":"prerouting","prio":-300,"policy":"accept"}},
            {"rule":{"chain":"prerouting","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@v4_saddr"}},{"drop":null}]}}]}"#;
        let observed = Observed::parse(json).expect("parses");
        assert_eq!(
            observed.rules["prerouting"],
            vec!["ip saddr @v4_saddr drop"]
        );
        assert!(observed.elements["v4_saddr_proto_sport"].contains("50.2.6.12/32 . udp . 53"));
        let seed = "udp from 50.2.6.12 sport 53".parse().expect("target");
        assert_eq!(
            observed.dropped(&seed),
            Some(Counter {
                packets: 41,
                bytes: 2870
            })
        );
        assert_eq!(
            observed.dropped(&"from 192.0.2.7".parse().expect("target")),
            None,
            "listed without a counter"
        );
        let drift = observed.drift(
            &[
                element("from 192.0.2.7", 60),
                element("udp from 50.2.6.12 sport 53", 60),
                element("from 203.0.113.9", 60),
            ],
            &[],
        );
        assert!(
            drift
                .iter()
                .any(|d| d.contains("prerouting holds 1 rules, expected 16")),
            "{drift:?}"
        );
        assert!(
            drift.contains(&"chain output missing".to_owned()),
            "{drift:?}"
        );
        assert!(
            drift.iter().any(|d| d == "set v6_daddr missing"),
            "{drift:?}"
        );
        assert!(
            drift.contains(&"set v4_saddr lacks 203.0.113.9/32".to_owned()),
            "{drift:?}"
        );
        assert!(
            drift.contains(&"set v4_saddr holds an unknown element 198.51.100.0/24".to_owned()),
            "{drift:?}"
        );
        let tolerated = observed.drift(&[], &[element("from 198.51.100.0/24", 1)]);
        assert!(
            !tolerated.iter().any(|d| d.contains("198.51.100.0/24")),
            "{tolerated:?}"
        );
        assert!(
            Observed::of(&[element("from 192.0.2.7", 5)])
                .drift(&[element("from 192.0.2.7", 5)], &[])
                .is_empty()
        );
    }
}
