//! Whether conntrack entries carry an extension area (`nf_ct_ext_add`, at least one
//! `kmalloc-128` object: `NF_CT_EXT_PREALLOC`) beside their slab object, and why. The kernel adds
//! one to a new entry for accounting (`nf_conntrack_acct`), timestamps (`nf_conntrack_timestamp`),
//! the event cache (`nf_conntrack_events` 1, or 2 with a listener: `nf_ct_ecache_ext_add`), NAT
//! (masquerade, helpers' sequence adjustment) and helpers. Measured on 6.18: 256 B per entry
//! plain, 384 B with masquerade or a `conntrack -E` listener.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ctguard_protocol::status::EntryExtension;

use crate::child;

/// The smallest extension area: `NF_CT_EXT_PREALLOC`, one `kmalloc-128` object.
pub const EXTENSION_BYTES: u64 = 128;
/// NETLINK_NETFILTER in `/proc/net/netlink`'s `Eth` column.
const NETLINK_NETFILTER: u32 = 12;
/// NFNLGRP_CONNTRACK_NEW, _UPDATE and _DESTROY (groups 1-3: bits 0-2 of the `Groups` column).
const CONNTRACK_EVENT_GROUPS: u32 = 0b111;
/// How long a look at the namespace's ruleset (NAT chains, helpers) is reused: `nft` is a
/// process, the status is read every second, and rules come and go with configuration, not
/// traffic.
const NAT_RECHECK: Duration = Duration::from_secs(60);
const NFT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the namespace's ruleset shows that gives entries an extension area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RulesetNeeds {
    pub nat: bool,
    pub helpers: bool,
}

/// Whether the namespace has NAT chains (and rule-assigned helpers), and how that is found out.
#[derive(Debug, Clone)]
pub enum NatProbe {
    /// Only iptables-legacy's `net/ip_tables_names` under the root (fixtures).
    TablesOnly,
    /// Also `nft list ruleset`, at most once per [`NAT_RECHECK`].
    Nft {
        program: PathBuf,
        last: Arc<Mutex<Option<(Instant, RulesetNeeds)>>>,
    },
}

impl NatProbe {
    pub fn nft() -> Self {
        Self::Nft {
            program: child::system_binary("nft"),
            last: Arc::default(),
        }
    }

    fn ruleset_needs(&self, root: &Path) -> RulesetNeeds {
        let legacy = ["net/ip_tables_names", "net/ip6_tables_names"]
            .iter()
            .any(|names| {
                std::fs::read_to_string(root.join(names))
                    .is_ok_and(|text| text.lines().any(|table| table.trim() == "nat"))
            });
        let nft = match self {
            Self::TablesOnly => RulesetNeeds::default(),
            Self::Nft { program, last } => nft_ruleset_needs(program, last),
        };
        RulesetNeeds {
            nat: legacy || nft.nat,
            helpers: nft.helpers,
        }
    }
}

fn nft_ruleset_needs(
    program: &Path,
    last: &Mutex<Option<(Instant, RulesetNeeds)>>,
) -> RulesetNeeds {
    let mut last = last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, found)) = *last
        && at.elapsed() < NAT_RECHECK
    {
        return found;
    }
    let found = match child::run(
        program,
        &["list", "ruleset"],
        None,
        child::Stdout::Keep,
        NFT_TIMEOUT,
    ) {
        Ok(finished) if finished.status.success() => {
            let listing = String::from_utf8_lossy(&finished.stdout);
            RulesetNeeds {
                nat: has_nat_chain(&listing),
                helpers: has_rule_helper(&listing),
            }
        }
        Ok(finished) => {
            tracing::debug!(stderr = %finished.stderr, "nft list ruleset failed");
            RulesetNeeds::default()
        }
        Err(error) => {
            tracing::debug!(%error, "nft list ruleset failed");
            RulesetNeeds::default()
        }
    };
    *last = Some((Instant::now(), found));
    found
}

/// Whether the ruleset assigns a conntrack helper: a `ct helper` object (`ct helper NAME {`) or
/// a `ct helper set` statement (iptables-nft's `-j CT --helper` shows as the latter's xt form,
/// not caught here).
pub fn has_rule_helper(listing: &str) -> bool {
    listing.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("ct helper ") || line.contains("ct helper set ")
    })
}

/// Whether an `nft list` listing has a NAT base chain (`type nat hook ...`).
pub fn has_nat_chain(listing: &str) -> bool {
    listing
        .lines()
        .any(|line| line.trim_start().starts_with("type nat hook"))
}

/// Whether `/proc/net/netlink` (this namespace's netlink sockets) lists a netfilter socket
/// subscribed to conntrack events: `nf_ctnetlink_has_listener`, which makes the kernel's
/// default `nf_conntrack_events = 2` give every new entry an event cache.
pub fn has_event_listener(netlink: &str) -> bool {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    netlink.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let protocol = fields.get(1).and_then(|f| f.parse::<u32>().ok());
        let groups = fields.get(3).and_then(|f| u32::from_str_radix(f, 16).ok());
        protocol == Some(NETLINK_NETFILTER)
            && groups.is_some_and(|groups| groups & CONNTRACK_EVENT_GROUPS != 0)
    })
}

/// The reasons new entries in the namespace under `root` carry an extension area, sorted.
pub fn detect(root: &Path, nat: &NatProbe) -> Vec<EntryExtension> {
    let sysctl = |name: &str| {
        std::fs::read_to_string(root.join("sys/net/netfilter").join(name))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
    };
    let mut found = Vec::new();
    if sysctl("nf_conntrack_acct").unwrap_or(0) != 0 {
        found.push(EntryExtension::Accounting);
    }
    if sysctl("nf_conntrack_timestamp").unwrap_or(0) != 0 {
        found.push(EntryExtension::Timestamps);
    }
    match sysctl("nf_conntrack_events") {
        Some(1) => found.push(EntryExtension::EventsAlways),
        Some(2) => {
            let listening = std::fs::read_to_string(root.join("net/netlink"))
                .is_ok_and(|text| has_event_listener(&text));
            if listening {
                found.push(EntryExtension::EventListener);
            }
        }
        // 0, or no events in this kernel (CONFIG_NF_CONNTRACK_EVENTS off).
        _ => {}
    }
    let ruleset = nat.ruleset_needs(root);
    if ruleset.nat {
        found.push(EntryExtension::Nat);
    }
    if ruleset.helpers {
        found.push(EntryExtension::RuleHelpers);
    }
    // Removed in 6.0; where it exists and is on, every entry on a helper's port gets one.
    if sysctl("nf_conntrack_helper").unwrap_or(0) != 0 {
        found.push(EntryExtension::AutomaticHelpers);
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (relative, text) in files {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    /// This machine's /proc/net/netlink with `conntrack -E` running (groups 1-3) beside a socket
    /// of NFNLGRP_NFTABLES (group 7, the helper's own watch).
    const LISTENING: &str = "\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000fd84766d 12  0          00000000 0        0        0     2        0        566
00000000a1b2c3d4 12  4242       00000007 0        0        0     2        0        9001
";
    const NFTABLES_WATCH_ONLY: &str = "\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000fd84766d 12  0          00000000 0        0        0     2        0        566
00000000a1b2c3d4 12  4242       00000040 0        0        0     2        0        9001
00000000a1b2c3d5 0   4243       00000007 0        0        0     2        0        9002
";

    #[test]
    fn a_conntrack_event_listener_is_found_and_other_sockets_are_not() {
        assert!(has_event_listener(LISTENING));
        assert!(
            !has_event_listener(NFTABLES_WATCH_ONLY),
            "nftables notifications and a route socket's groups are not conntrack events"
        );
        assert!(!has_event_listener(""));
    }

    #[test]
    fn a_plain_table_has_no_extension_area() {
        let dir = tree(&[
            ("sys/net/netfilter/nf_conntrack_acct", "0\n"),
            ("sys/net/netfilter/nf_conntrack_timestamp", "0\n"),
            ("sys/net/netfilter/nf_conntrack_events", "2\n"),
            ("net/netlink", NFTABLES_WATCH_ONLY),
        ]);
        assert_eq!(detect(dir.path(), &NatProbe::TablesOnly), vec![]);
    }

    #[test]
    fn each_reason_is_named() {
        let dir = tree(&[
            ("sys/net/netfilter/nf_conntrack_acct", "1\n"),
            ("sys/net/netfilter/nf_conntrack_timestamp", "1\n"),
            ("sys/net/netfilter/nf_conntrack_events", "2\n"),
            ("sys/net/netfilter/nf_conntrack_helper", "1\n"),
            ("net/netlink", LISTENING),
            ("net/ip_tables_names", "filter\nnat\n"),
        ]);
        assert_eq!(
            detect(dir.path(), &NatProbe::TablesOnly),
            vec![
                EntryExtension::Accounting,
                EntryExtension::Timestamps,
                EntryExtension::EventListener,
                EntryExtension::Nat,
                EntryExtension::AutomaticHelpers,
            ]
        );
        let always = tree(&[("sys/net/netfilter/nf_conntrack_events", "1\n")]);
        assert_eq!(
            detect(always.path(), &NatProbe::TablesOnly),
            vec![EntryExtension::EventsAlways],
            "events = 1 allocates the cache with no listener"
        );
        let off = tree(&[
            ("sys/net/netfilter/nf_conntrack_events", "0\n"),
            ("net/netlink", LISTENING),
        ]);
        assert_eq!(detect(off.path(), &NatProbe::TablesOnly), vec![]);
    }

    #[test]
    fn helpers_the_ruleset_assigns_are_found_and_a_mention_elsewhere_is_not() {
        let ruleset = "table inet filter {\n\tct helper ftp-standard {\n\t\ttype \"ftp\" protocol tcp\n\t\tl3proto inet\n\t}\n\tchain pre {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\ttcp dport 21 ct helper set \"ftp-standard\"\n\t}\n}\n";
        assert!(has_rule_helper(ruleset));
        let set_only = "\t\ttcp dport 21 ct helper set \"ftp\"\n";
        assert!(has_rule_helper(set_only));
        let plain = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tct state established accept comment \"no helpers here\"\n\t}\n}\n";
        assert!(!has_rule_helper(plain));
    }

    #[test]
    fn nat_chains_are_found_in_the_nft_listing() {
        let listing = "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n";
        assert!(has_nat_chain(listing));
        let filter = "table inet t {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n";
        assert!(!has_nat_chain(filter));
    }
}
