//! The guardrails: which networks the helper refuses to block or flush, whatever the server
//! already checked. Each refusal is its own `HelperError` variant.

use std::net::IpAddr;

use ctguard_protocol::{HelperError, IpNet, address};

/// The configured limits. Host addresses are not configured: they are read from the watched
/// namespace at every check (`host_addresses`), so a new address is protected at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrails {
    /// The shortest IPv4 prefix allowed (16: a /16 may be blocked, a /15 may not).
    pub min_prefix_v4: u8,
    pub min_prefix_v6: u8,
    /// Networks never to be blocked: gateways, resolvers, management networks.
    pub protected: Vec<IpNet>,
    /// The most blocks in force at once (at most [`crate::blocks::MAX_BLOCKS`]).
    pub max_blocks: usize,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self {
            min_prefix_v4: 16,
            min_prefix_v6: 48,
            protected: Vec::new(),
            max_blocks: crate::blocks::MAX_BLOCKS,
        }
    }
}

/// Address ranges no block may touch, with the refusal each one earns.
const SPECIAL: &[(&str, Special)] = &[
    ("0.0.0.0/32", Special::Unspecified),
    ("::/128", Special::Unspecified),
    ("127.0.0.0/8", Special::Loopback),
    ("::1/128", Special::Loopback),
    ("169.254.0.0/16", Special::LinkLocal),
    ("fe80::/10", Special::LinkLocal),
    ("224.0.0.0/4", Special::Multicast),
    ("255.255.255.255/32", Special::Multicast),
    ("ff00::/8", Special::Multicast),
];

#[derive(Debug, Clone, Copy)]
enum Special {
    Unspecified,
    Loopback,
    LinkLocal,
    Multicast,
}

impl Special {
    fn refusal(self, network: IpNet) -> HelperError {
        match self {
            Self::Unspecified => HelperError::Unspecified { network },
            Self::Loopback => HelperError::Loopback { network },
            Self::LinkLocal => HelperError::LinkLocal { network },
            Self::Multicast => HelperError::Multicast { network },
        }
    }
}

/// Whether two networks share any address (networks either nest or are disjoint).
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// The network as written and, when it embeds one (NAT64, 6to4), the IPv4 network it reaches:
/// a block of `64:ff9b::c000:201` stops the translated traffic of 192.0.2.1, so every check that
/// protects an address looks at both.
fn views(network: IpNet) -> impl Iterator<Item = IpNet> {
    std::iter::once(network).chain(address::embedded_ipv4(network).map(IpNet::V4))
}

/// A single address as the networks it stands for (see [`views`]).
fn address_views(address: IpAddr) -> impl Iterator<Item = IpNet> {
    views(IpNet::from(address::canonical_address(address)))
}

impl Guardrails {
    /// Checks a target network against every rule, in a fixed order, returning the first refusal.
    /// The network is taken in its canonical form (a mapped network is its IPv4 one); one that
    /// has none (a mapped network shorter than /96) is refused as too wide.
    pub fn check(
        &self,
        network: IpNet,
        requested_by: IpAddr,
        host_addresses: &[IpAddr],
    ) -> Result<(), HelperError> {
        let network =
            address::canonical_network(network).map_err(|_| HelperError::PrefixTooWide {
                network,
                minimum_prefix: 96,
            })?;
        if network.prefix_len() == 0 {
            return Err(HelperError::EverythingTarget { network });
        }
        let minimum_prefix = match network {
            IpNet::V4(_) => self.min_prefix_v4,
            IpNet::V6(_) => self.min_prefix_v6,
        };
        if network.prefix_len() < minimum_prefix {
            return Err(HelperError::PrefixTooWide {
                network,
                minimum_prefix,
            });
        }
        for (range, special) in SPECIAL {
            let range: IpNet = range.parse().expect("a valid built-in range");
            if overlap(&network, &range) {
                return Err(special.refusal(network));
            }
        }
        let touches = |other: IpNet| {
            views(network).any(|mine| views(other).any(|theirs| overlap(&mine, &theirs)))
        };
        let touches_address = |address: IpAddr| {
            address_views(address).any(|theirs| views(network).any(|mine| mine.contains(&theirs)))
        };
        if let Some(address) = host_addresses
            .iter()
            .map(|a| address::canonical_address(*a))
            .find(|a| touches_address(*a))
        {
            return Err(HelperError::HostAddress { network, address });
        }
        let requester = address::canonical_address(requested_by);
        if touches_address(requester) {
            return Err(HelperError::RequesterAddress {
                network,
                address: requester,
            });
        }
        if let Some(protected) = self
            .protected
            .iter()
            .filter_map(|p| address::canonical_network(*p).ok())
            .find(|p| touches(*p))
        {
            return Err(HelperError::ProtectedNetwork { network, protected });
        }
        Ok(())
    }
}

/// The addresses of the watched namespace's interfaces (the process is in it).
pub fn host_addresses() -> Result<Vec<IpAddr>, nix::Error> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter_map(|interface| {
            let address = interface.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        ctguard_protocol::target::parse_network(s).expect(s)
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().expect(s)
    }

    const REQUESTER: &str = "198.51.100.5";
    const HOST: &[&str] = &["203.0.113.1", "2001:db8:1::1", "192.0.2.254"];

    fn guard() -> Guardrails {
        Guardrails {
            protected: vec![net("198.51.100.64/26"), net("2001:db8:ffff::/48")],
            ..Guardrails::default()
        }
    }

    fn check(target: &str) -> Result<(), HelperError> {
        let host: Vec<IpAddr> = HOST.iter().map(|a| ip(a)).collect();
        guard().check(net(target), ip(REQUESTER), &host)
    }

    #[test]
    fn ordinary_targets_pass() {
        for ok in [
            "203.0.113.66",
            "192.0.2.0/25",
            "50.2.6.12",
            "10.1.0.0/16",
            "2001:db8:2::/48",
            "2001:db8:2::7",
            "::ffff:203.0.113.66",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn everything_and_wide_prefixes_are_refused() {
        assert!(matches!(
            check("0.0.0.0/0"),
            Err(HelperError::EverythingTarget { .. })
        ));
        assert!(matches!(
            check("::/0"),
            Err(HelperError::EverythingTarget { .. })
        ));
        assert_eq!(
            check("10.0.0.0/15"),
            Err(HelperError::PrefixTooWide {
                network: net("10.0.0.0/15"),
                minimum_prefix: 16
            })
        );
        assert_eq!(
            check("2001:db8::/47"),
            Err(HelperError::PrefixTooWide {
                network: net("2001:db8::/47"),
                minimum_prefix: 48
            })
        );
        let strict = Guardrails {
            min_prefix_v4: 24,
            ..guard()
        };
        assert!(matches!(
            strict.check(net("10.1.0.0/23"), ip(REQUESTER), &[]),
            Err(HelperError::PrefixTooWide {
                minimum_prefix: 24,
                ..
            })
        ));
    }

    #[test]
    fn special_ranges_are_refused_with_their_own_errors() {
        for (target, expected) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("0.0.0.0/16", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.5.0.0/16", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.1.1", "link_local"),
            ("fe80::1", "link_local"),
            ("224.0.0.251", "multicast"),
            ("239.1.0.0/16", "multicast"),
            ("255.255.255.255", "multicast"),
            ("ff02::1", "multicast"),
        ] {
            let error = check(target).expect_err(target);
            let kind = serde_json::to_value(&error).expect("json")["kind"].clone();
            assert_eq!(kind, expected, "{target}: {error}");
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_refused() {
        assert_eq!(
            check("203.0.113.0/24"),
            Err(HelperError::HostAddress {
                network: net("203.0.113.0/24"),
                address: ip("203.0.113.1")
            })
        );
        assert!(matches!(
            check("2001:db8:1::1"),
            Err(HelperError::HostAddress { .. })
        ));
        assert!(matches!(
            check("::ffff:192.0.2.254"),
            Err(HelperError::HostAddress { .. })
        ));
        let mapped_host = [ip("::ffff:192.0.2.9")];
        assert!(matches!(
            guard().check(net("192.0.2.9"), ip(REQUESTER), &mapped_host),
            Err(HelperError::HostAddress { .. })
        ));
    }

    #[test]
    fn the_requesters_address_is_refused_in_either_notation() {
        let expected = Err(HelperError::RequesterAddress {
            network: net("198.51.100.0/25"),
            address: ip(REQUESTER),
        });
        assert_eq!(check("198.51.100.0/25"), expected);
        let host: Vec<IpAddr> = vec![];
        assert_eq!(
            guard().check(net("198.51.100.0/25"), ip("::ffff:198.51.100.5"), &host),
            expected,
            "a mapped client address counts as its IPv4 one"
        );
        assert!(matches!(
            guard().check(net("2001:db8:5::/64"), ip("2001:db8:5::9"), &host),
            Err(HelperError::RequesterAddress { .. })
        ));
    }

    #[test]
    fn protected_networks_are_refused_when_they_overlap_either_way() {
        for target in ["198.51.100.70", "198.51.100.64/26", "198.51.100.128/25"] {
            let result = check(target);
            if target == "198.51.100.128/25" {
                assert_eq!(result, Ok(()), "disjoint from the protected /26");
            } else {
                assert_eq!(
                    result,
                    Err(HelperError::ProtectedNetwork {
                        network: net(target),
                        protected: net("198.51.100.64/26")
                    }),
                    "{target}"
                );
            }
        }
        assert!(matches!(
            check("2001:db8:ffff:1::/64"),
            Err(HelperError::ProtectedNetwork { .. })
        ));
    }

    #[test]
    fn ipv4_embedded_in_nat64_and_6to4_is_protected_like_ipv4() {
        let host: Vec<IpAddr> = HOST.iter().map(|a| ip(a)).collect();
        // 203.0.113.1 is a host address: its NAT64 and 6to4 forms are refused as that address.
        for target in [
            "64:ff9b::cb00:7101",
            "64:ff9b::203.0.113.1",
            "2002:cb00:7101::/48",
        ] {
            assert_eq!(
                guard().check(net(target), ip(REQUESTER), &host),
                Err(HelperError::HostAddress {
                    network: net(target),
                    address: ip("203.0.113.1")
                }),
                "{target}"
            );
        }
        // The requester 198.51.100.5, reached through NAT64.
        assert!(matches!(
            guard().check(net("64:ff9b::c633:6405"), ip(REQUESTER), &[]),
            Err(HelperError::RequesterAddress { .. })
        ));
        // A requester whose address arrives in NAT64 form is its IPv4 host too.
        assert!(matches!(
            guard().check(net("198.51.100.0/25"), ip("64:ff9b::c633:6405"), &[]),
            Err(HelperError::RequesterAddress { .. })
        ));
        // The protected 198.51.100.64/26, reached through 6to4 (198.51.100.70 = c633:6446).
        assert!(matches!(
            guard().check(net("2002:c633:6446::/48"), ip("192.0.2.200"), &[]),
            Err(HelperError::ProtectedNetwork { .. })
        ));
        // Elsewhere in those ranges is an ordinary target.
        assert_eq!(
            guard().check(net("64:ff9b::cb00:7142"), ip(REQUESTER), &host),
            Ok(())
        );
    }

    #[test]
    fn the_first_rule_that_applies_wins() {
        // A /8 that is loopback is refused for its width first.
        assert!(matches!(
            check("127.0.0.0/8"),
            Err(HelperError::PrefixTooWide { .. })
        ));
    }

    #[test]
    fn this_namespace_has_addresses_to_protect() {
        let addresses = host_addresses().expect("getifaddrs");
        assert!(addresses.iter().any(IpAddr::is_loopback), "{addresses:?}");
    }
}
