//! One address, one form: the strict parser for addresses and networks, the canonical form every
//! component stores and compares (an IPv4-mapped IPv6 address *is* its IPv4 address), and the
//! IPv4 addresses that other IPv6 forms carry inside them (NAT64, 6to4) for the guardrails.
//!
//! The server's text parser, the helper's command line and every deserialised target go through
//! here, so the guardrails, the helper's state, the nftables set and the conntrack deletion all
//! see the same network for the same packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer};

/// Why a network's text or value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0:?} is not an address or a CIDR network")]
    BadNetwork(String),
    #[error(
        "{0} is an IPv4-mapped network shorter than /96: it would reach past the IPv4 space; \
         name the IPv4 network instead"
    )]
    MappedPrefixTooShort(IpNet),
}

/// The IPv4-mapped range `::ffff:0:0/96`: a dual-stack socket reports IPv4 peers this way, and
/// nftables' `ip6` matches never see those packets (they are IPv4 on the wire).
fn mapped_range() -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96).expect("a valid prefix")
}

/// Parses an address (`192.0.2.7`, meaning its host network) or a CIDR network, strictly, and
/// returns it in canonical form.
///
/// Strict: the address must be what the standard library accepts (no IPv4 octet with a leading
/// zero, since `inet_aton` and `ping` read `010` as octal 8 while a naive parser reads 10), and
/// the prefix length plain decimal (no sign, no leading zero, no spaces). Host bits are kept as
/// written; whether they may be set is the caller's rule.
pub fn parse_network(text: &str) -> Result<IpNet, AddressError> {
    let bad = || AddressError::BadNetwork(text.chars().take(64).collect());
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let max = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let prefix = match prefix {
        None => max,
        Some(digits) => {
            let plain = !digits.is_empty()
                && digits.len() <= 3
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            let prefix: u8 = digits.parse().ok().filter(|_| plain).ok_or_else(bad)?;
            if prefix > max {
                return Err(bad());
            }
            prefix
        }
    };
    canonical_network(IpNet::new(address, prefix).map_err(|_| bad())?)
}

/// The canonical form of a network: `::ffff:a.b.c.d/n` with n ≥ 96 is the IPv4 network
/// `a.b.c.d/(n-96)`; a mapped network shorter than /96 is refused (it would cover the mapped
/// range and beyond, which no IPv4 target can express). Anything else is unchanged.
pub fn canonical_network(network: IpNet) -> Result<IpNet, AddressError> {
    let IpNet::V6(v6) = network else {
        return Ok(network);
    };
    let mapped = mapped_range();
    if mapped.contains(&v6) {
        let v4 = v6.addr().to_ipv4_mapped().expect("inside the mapped range");
        let net = Ipv4Net::new(v4, v6.prefix_len() - 96).expect("0..=32 after the mapped prefix");
        return Ok(IpNet::V4(net));
    }
    // ::/0 is "everything", which the guardrails refuse under that name.
    if v6.contains(&mapped) && v6.prefix_len() > 0 {
        return Err(AddressError::MappedPrefixTooShort(network));
    }
    Ok(network)
}

/// The canonical form of an address: `::ffff:a.b.c.d` is `a.b.c.d`.
pub fn canonical_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 network an IPv6 network stands for when it embeds one: NAT64's well-known prefix
/// `64:ff9b::/96` (RFC 6052: the IPv4 address in the last 32 bits) and 6to4's `2002::/16`
/// (RFC 3056: in bits 16..48, the rest being that site's own subnets). A block of such a network
/// reaches the IPv4 host behind it, so the guardrails check that host too. IPv4-mapped networks
/// are canonicalised to IPv4 before this is asked.
pub fn embedded_ipv4(network: IpNet) -> Option<Ipv4Net> {
    let IpNet::V6(v6) = network else {
        return None;
    };
    let bits = u128::from(v6.addr());
    let nat64 = Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96).expect("prefix");
    let six_to_four = Ipv6Net::new(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16).expect("prefix");
    let everything = Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("prefix");
    let start = if nat64.contains(&v6) {
        96
    } else if six_to_four.contains(&v6) {
        16
    } else if v6.contains(&nat64) || v6.contains(&six_to_four) {
        // Wider than the whole embedding range: it reaches every IPv4 host.
        return Some(everything);
    } else {
        return None;
    };
    // The 32 bits that follow `start` bits of prefix, as an IPv4 address.
    let v4 = Ipv4Addr::from((bits >> (128 - start - 32)) as u32);
    let prefix = (v6.prefix_len() - start).min(32);
    Some(Ipv4Net::new(v4, prefix).expect("0..=32").trunc())
}

/// A network as a serde field: the strict parser, then the canonical form.
pub fn deserialize_network<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpNet, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_network(&text).map_err(serde::de::Error::custom)
}

/// An optional network as a serde field (see [`deserialize_network`]).
pub fn deserialize_optional_network<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<IpNet>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse_network(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        parse_network(text).expect(text)
    }

    #[test]
    fn mapped_networks_are_their_ipv4_network() {
        assert_eq!(net("::ffff:192.0.2.77"), net("192.0.2.77/32"));
        assert_eq!(net("::ffff:192.0.2.77/128"), net("192.0.2.77"));
        assert_eq!(net("::ffff:c000:24d/128"), net("192.0.2.77"));
        assert_eq!(net("::FFFF:192.0.2.0/120"), net("192.0.2.0/24"));
        assert_eq!(net("::ffff:0.0.0.0/96"), net("0.0.0.0/0"));
        assert_eq!(
            canonical_address("::ffff:198.51.100.5".parse().expect("addr")),
            "198.51.100.5".parse::<IpAddr>().expect("addr")
        );
        // Not mapped: the IPv4-compatible form and ordinary IPv6 stay IPv6.
        assert!(matches!(net("::192.0.2.77"), IpNet::V6(_)));
        assert!(matches!(net("2001:db8::1"), IpNet::V6(_)));
    }

    #[test]
    fn a_mapped_prefix_shorter_than_96_is_refused() {
        for wide in ["::ffff:0.0.0.0/95", "::/80", "::ffff:0:0/64"] {
            assert!(
                matches!(
                    parse_network(wide),
                    Err(AddressError::MappedPrefixTooShort(_))
                ),
                "{wide}"
            );
        }
        // ::/0 covers the mapped range too, but it is "everything": the guardrails refuse it
        // under that name, so it stays a network here.
        assert_eq!(net("::/0").prefix_len(), 0);
    }

    #[test]
    fn leading_zeros_and_odd_prefixes_are_refused_in_every_spelling() {
        for bad in [
            "010.1.1.1",
            "010.1.1.1/32",
            "10.01.1.1/32",
            "::ffff:010.1.1.1",
            "::ffff:010.1.1.1/128",
            "192.0.2.1/032",
            "192.0.2.1/+32",
            "192.0.2.1/ 32",
            "192.0.2.1/",
            "192.0.2.1/33",
            "2001:db8::/0048",
            "2001:db8::/129",
            "0x7f.1",
            "127.1",
            "1.2.3.4.5",
            " 1.2.3.4",
            "example.com",
            "",
        ] {
            assert!(parse_network(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(net("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(net("10.0.0.0/8").prefix_len(), 8);
        assert_eq!(net("2001:db8::/48").prefix_len(), 48);
    }

    #[test]
    fn nat64_and_6to4_carry_their_ipv4_host() {
        let v4 = |t: &str| t.parse::<Ipv4Net>().expect(t);
        assert_eq!(
            embedded_ipv4(net("64:ff9b::c000:201")),
            Some(v4("192.0.2.1/32"))
        );
        assert_eq!(
            embedded_ipv4(net("64:ff9b::192.0.2.1")),
            Some(v4("192.0.2.1/32"))
        );
        assert_eq!(
            embedded_ipv4(net("64:ff9b::c000:200/120")),
            Some(v4("192.0.2.0/24"))
        );
        assert_eq!(embedded_ipv4(net("64:ff9b::/96")), Some(v4("0.0.0.0/0")));
        assert_eq!(
            embedded_ipv4(net("2002:c000:201::/48")),
            Some(v4("192.0.2.1/32"))
        );
        assert_eq!(
            embedded_ipv4(net("2002:c000:201:7::1")),
            Some(v4("192.0.2.1/32"))
        );
        assert_eq!(
            embedded_ipv4(net("2002:c000:200::/40")),
            Some(v4("192.0.2.0/24"))
        );
        assert_eq!(embedded_ipv4(net("2002::/16")), Some(v4("0.0.0.0/0")));
        assert_eq!(embedded_ipv4(net("2000::/3")), Some(v4("0.0.0.0/0")));
        assert_eq!(embedded_ipv4(net("2001:db8::1")), None);
        assert_eq!(embedded_ipv4(net("192.0.2.1")), None);
    }

    #[test]
    fn serde_fields_use_the_strict_parser() {
        #[derive(Debug, Deserialize)]
        struct Field {
            #[serde(deserialize_with = "deserialize_network")]
            network: IpNet,
        }
        let parsed: Field =
            serde_json::from_str(r#"{"network":"::ffff:192.0.2.77/128"}"#).expect("parses");
        assert_eq!(parsed.network, net("192.0.2.77"));
        assert!(serde_json::from_str::<Field>(r#"{"network":"010.1.1.1/32"}"#).is_err());
    }
}
