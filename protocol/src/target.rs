//! Block targets: an address or CIDR, which side of a packet it is on, an optional protocol and
//! port, parsed and validated once so no other code can hold an ill-formed one.

use std::{fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::address::{self, AddressError};

/// A transport protocol a block can narrow to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Which side of a packet a match applies to: its source or its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Destination,
}

/// A port on one side of a packet, e.g. the seed's DNS reflection: source port 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPortMatch", into = "RawPortMatch")]
pub struct PortMatch {
    side: Side,
    port: u16,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortMatch {
    side: Side,
    port: u16,
}

impl PortMatch {
    pub fn new(side: Side, port: u16) -> Result<Self, TargetError> {
        if port == 0 {
            return Err(TargetError::PortZero);
        }
        Ok(Self { side, port })
    }
    pub fn side(self) -> Side {
        self.side
    }
    pub fn port(self) -> u16 {
        self.port
    }
}

impl TryFrom<RawPortMatch> for PortMatch {
    type Error = TargetError;
    fn try_from(raw: RawPortMatch) -> Result<Self, Self::Error> {
        Self::new(raw.side, raw.port)
    }
}

impl From<PortMatch> for RawPortMatch {
    fn from(port: PortMatch) -> Self {
        Self {
            side: port.side,
            port: port.port,
        }
    }
}

/// Why a target is not well-formed. (Whether a well-formed target may be blocked is the helper's
/// guardrails' business, not this type's.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("{0} has host bits set; the network is {1}")]
    HostBitsSet(IpNet, IpNet),
    #[error("port 0 cannot be matched")]
    PortZero,
    #[error("a port needs a protocol (tcp or udp)")]
    PortWithoutProtocol,
    #[error("cannot parse target {input:?}: {reason}")]
    Syntax { input: String, reason: &'static str },
}

/// What a block (or an entry deletion) applies to: packets whose `direction` address lies in
/// `network`, optionally only of `protocol`, optionally only with `port`.
///
/// Text form (for logs, the UI and tests): `[tcp|udp] from|to NETWORK [sport|dport PORT]`, e.g.
/// `udp from 50.2.6.12 sport 53` or `from 203.0.113.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawBlockTarget", into = "RawBlockTarget")]
pub struct BlockTarget {
    network: IpNet,
    direction: Side,
    protocol: Option<Protocol>,
    port: Option<PortMatch>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlockTarget {
    #[serde(deserialize_with = "address::deserialize_network")]
    network: IpNet,
    direction: Side,
    protocol: Option<Protocol>,
    port: Option<PortMatch>,
}

impl BlockTarget {
    /// A target. The network is taken in its canonical form (an IPv4-mapped network is its IPv4
    /// network, [`address::canonical_network`]) and must have no host bits set: `192.0.2.0/24`,
    /// not `192.0.2.7/24`, which is ambiguous about what the user meant.
    pub fn new(
        network: IpNet,
        direction: Side,
        protocol: Option<Protocol>,
        port: Option<PortMatch>,
    ) -> Result<Self, TargetError> {
        let network = address::canonical_network(network)?;
        if network.trunc() != network {
            return Err(TargetError::HostBitsSet(network, network.trunc()));
        }
        if port.is_some() && protocol.is_none() {
            return Err(TargetError::PortWithoutProtocol);
        }
        Ok(Self {
            network,
            direction,
            protocol,
            port,
        })
    }

    /// All traffic from one address or network.
    pub fn from_network(network: IpNet) -> Result<Self, TargetError> {
        Self::new(network, Side::Source, None, None)
    }

    pub fn network(&self) -> IpNet {
        self.network
    }
    pub fn direction(&self) -> Side {
        self.direction
    }
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }
    pub fn port(&self) -> Option<PortMatch> {
        self.port
    }
    pub fn is_ipv4(&self) -> bool {
        matches!(self.network, IpNet::V4(_))
    }

    /// Whether the two targets could match the same packet's address on the same side with the
    /// same protocol and port: the networks overlap and the narrowing is identical.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.direction == other.direction
            && self.protocol == other.protocol
            && self.port == other.port
            && (self.network.contains(&other.network) || other.network.contains(&self.network))
    }
}

impl TryFrom<RawBlockTarget> for BlockTarget {
    type Error = TargetError;
    fn try_from(raw: RawBlockTarget) -> Result<Self, Self::Error> {
        Self::new(raw.network, raw.direction, raw.protocol, raw.port)
    }
}

impl From<BlockTarget> for RawBlockTarget {
    fn from(target: BlockTarget) -> Self {
        Self {
            network: target.network,
            direction: target.direction,
            protocol: target.protocol,
            port: target.port,
        }
    }
}

/// Parses an address (`192.0.2.7`, a host network) or a CIDR network, strictly and into its
/// canonical form ([`address::parse_network`]).
pub fn parse_network(text: &str) -> Result<IpNet, TargetError> {
    Ok(address::parse_network(text)?)
}

impl FromStr for BlockTarget {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = |reason| TargetError::Syntax {
            input: input.chars().take(128).collect(),
            reason,
        };
        let mut words = input.split_whitespace().peekable();
        let protocol = match words.peek().copied() {
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            _ => None,
        };
        if protocol.is_some() {
            words.next();
        }
        let direction = match words.next() {
            Some("from") => Side::Source,
            Some("to") => Side::Destination,
            _ => return Err(syntax("expected `from` or `to`")),
        };
        let network = parse_network(words.next().ok_or_else(|| syntax("expected a network"))?)?;
        let port = match words.next() {
            None => None,
            Some(word @ ("sport" | "dport")) => {
                let side = if word == "sport" {
                    Side::Source
                } else {
                    Side::Destination
                };
                let port = words
                    .next()
                    .ok_or_else(|| syntax("expected a port number"))?
                    .parse::<u16>()
                    .map_err(|_| syntax("a port is a number 1-65535"))?;
                Some(PortMatch::new(side, port)?)
            }
            Some(_) => return Err(syntax("expected `sport`, `dport` or the end")),
        };
        if words.next().is_some() {
            return Err(syntax("unexpected words after the port"));
        }
        Self::new(network, direction, protocol, port)
    }
}

impl fmt::Display for BlockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(protocol) = self.protocol {
            write!(f, "{} ", protocol.as_str())?;
        }
        let word = match self.direction {
            Side::Source => "from",
            Side::Destination => "to",
        };
        let host = self.network.prefix_len() == self.network.max_prefix_len();
        if host {
            write!(f, "{word} {}", self.network.addr())?;
        } else {
            write!(f, "{word} {}", self.network)?;
        }
        if let Some(port) = self.port {
            let word = match port.side {
                Side::Source => "sport",
                Side::Destination => "dport",
            };
            write!(f, " {word} {}", port.port)?;
        }
        Ok(())
    }
}

/// How long a block lasts, in seconds: at least [`BlockDuration::MIN_SECS`], at most
/// [`BlockDuration::MAX_SECS`] (30 days; a longer block belongs in the host's firewall config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct BlockDuration(u64);

impl BlockDuration {
    pub const MIN_SECS: u64 = 1;
    pub const MAX_SECS: u64 = 30 * 24 * 3600;

    pub fn from_secs(secs: u64) -> Result<Self, DurationError> {
        if (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(DurationError(secs))
        }
    }
    pub fn secs(self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a block lasts {min}..={max} seconds, not {0}", min = BlockDuration::MIN_SECS, max = BlockDuration::MAX_SECS)]
pub struct DurationError(pub u64);

impl TryFrom<u64> for BlockDuration {
    type Error = DurationError;
    fn try_from(secs: u64) -> Result<Self, Self::Error> {
        Self::from_secs(secs)
    }
}

impl From<BlockDuration> for u64 {
    fn from(duration: BlockDuration) -> Self {
        duration.0
    }
}

/// A short free text (a reason, an actor's name): 1..=[`ShortText::MAX_CHARS`] characters, no
/// control characters, so it is safe in logs and the journal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortText(String);

impl ShortText {
    pub const MAX_CHARS: usize = 200;

    pub fn new(text: impl Into<String>) -> Result<Self, TextError> {
        let text = text.into();
        let chars = text.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(TextError::Length(chars));
        }
        if text.chars().any(char::is_control) {
            return Err(TextError::Control);
        }
        Ok(Self(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text must have 1..={max} characters, not {0}", max = ShortText::MAX_CHARS)]
    Length(usize),
    #[error("text must not contain control characters")]
    Control,
}

impl TryFrom<String> for ShortText {
    type Error = TextError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl From<ShortText> for String {
    fn from(text: ShortText) -> Self {
        text.0
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> BlockTarget {
        text.parse().expect(text)
    }

    #[test]
    fn the_seeds_dns_reflection_block_parses_and_prints_back() {
        let t = target("udp from 50.2.6.12 sport 53");
        assert_eq!(t.network(), "50.2.6.12/32".parse::<IpNet>().expect("net"));
        assert_eq!(t.direction(), Side::Source);
        assert_eq!(t.protocol(), Some(Protocol::Udp));
        assert_eq!(
            t.port(),
            Some(PortMatch::new(Side::Source, 53).expect("port"))
        );
        assert_eq!(t.to_string(), "udp from 50.2.6.12 sport 53");
        for text in [
            "from 203.0.113.0/24",
            "to 2001:db8::/48",
            "tcp to 198.51.100.7 dport 443",
            "tcp from 2001:db8::1",
        ] {
            assert_eq!(target(text).to_string(), text);
        }
    }

    #[test]
    fn ill_formed_targets_are_refused() {
        for bad in [
            "",
            "from",
            "udp 1.2.3.4",
            "from 1.2.3.4/33",
            "from 192.0.2.7/24",
            "from 1.2.3.4 sport 53",
            "udp from 1.2.3.4 sport 0",
            "udp from 1.2.3.4 sport 65536",
            "udp from 1.2.3.4 sport",
            "udp from 1.2.3.4 sport 53 extra",
            "icmp from 1.2.3.4",
            "from example.com",
            "from 010.1.1.1",
            "from 010.1.1.1/32",
            "from ::ffff:0.0.0.0/95",
            "udp from 192.0.2.1/032 sport 53",
        ] {
            assert!(bad.parse::<BlockTarget>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_json_form_is_validated_too() {
        let json = serde_json::to_string(&target("udp from 50.2.6.12 sport 53")).expect("json");
        assert_eq!(
            json,
            r#"{"network":"50.2.6.12/32","direction":"source","protocol":"udp","port":{"side":"source","port":53}}"#
        );
        assert_eq!(
            serde_json::from_str::<BlockTarget>(&json).expect("parses"),
            target("udp from 50.2.6.12 sport 53")
        );
        for bad in [
            r#"{"network":"192.0.2.7/24","direction":"source","protocol":null,"port":null}"#,
            r#"{"network":"192.0.2.0/24","direction":"source","protocol":null,"port":{"side":"source","port":53}}"#,
            r#"{"network":"192.0.2.0/24","direction":"source","protocol":"udp","port":{"side":"source","port":0}}"#,
            r#"{"network":"192.0.2.0/24","direction":"source","protocol":null,"port":null,"x":1}"#,
            r#"{"network":"192.0.2.0/24","direction":"up","protocol":null,"port":null}"#,
            r#"{"network":"010.1.1.1/32","direction":"source","protocol":null,"port":null}"#,
            r#"{"network":"::ffff:0:0/80","direction":"source","protocol":null,"port":null}"#,
        ] {
            assert!(
                serde_json::from_str::<BlockTarget>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn durations_and_texts_are_bounded() {
        assert!(BlockDuration::from_secs(0).is_err());
        assert!(BlockDuration::from_secs(BlockDuration::MAX_SECS + 1).is_err());
        assert_eq!(BlockDuration::from_secs(3600).expect("ok").secs(), 3600);
        assert!(serde_json::from_str::<BlockDuration>("0").is_err());
        assert!(ShortText::new("").is_err());
        assert!(ShortText::new("a\nb").is_err());
        assert!(ShortText::new("x".repeat(201)).is_err());
        assert!(ShortText::new("DNS reflection from 50.2.6.12").is_ok());
    }

    #[test]
    fn a_mapped_target_is_the_ipv4_target_in_text_and_json() {
        let mapped = target("udp from ::ffff:192.0.2.77/128 sport 53");
        assert_eq!(mapped, target("udp from 192.0.2.77 sport 53"));
        assert!(mapped.is_ipv4());
        assert_eq!(mapped.to_string(), "udp from 192.0.2.77 sport 53");
        let json = r#"{"network":"::ffff:192.0.2.0/120","direction":"source","protocol":null,"port":null}"#;
        let parsed: BlockTarget = serde_json::from_str(json).expect("parses");
        assert_eq!(parsed, target("from 192.0.2.0/24"));
        let built = BlockTarget::from_network("::ffff:192.0.2.77/128".parse().expect("net"))
            .expect("target");
        assert_eq!(built, target("from 192.0.2.77"));
        assert!(built.overlaps(&target("from 192.0.2.0/24")));
    }

    #[test]
    fn overlap_needs_the_same_narrowing() {
        let wide = target("from 192.0.2.0/24");
        assert!(wide.overlaps(&target("from 192.0.2.7")));
        assert!(!wide.overlaps(&target("to 192.0.2.7")));
        assert!(!wide.overlaps(&target("udp from 192.0.2.7")));
        assert!(!wide.overlaps(&target("from 198.51.100.0/24")));
    }
}
