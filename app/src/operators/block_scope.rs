//! The scope of a block as the block form edits it (which side, address or network, protocol,
//! port) and its text form, `[tcp|udp] from|to NETWORK [sport|dport PORT]`, which the server
//! parses with the protocol's own `BlockTarget` parser. Only the text crosses to the server, so
//! the parser stays out of the wasm bundle.

use ctguard_protocol::{Protocol, Side};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockScope {
    /// Which address of a packet lies in `network`: its source (`from`) or destination (`to`).
    pub direction: Side,
    /// An address or a CIDR network, as typed.
    pub network: String,
    pub protocol: Option<Protocol>,
    /// Which port of a packet must equal the number; needs a protocol.
    pub port: Option<(Side, u16)>,
}

impl BlockScope {
    /// Everything from one address.
    pub fn from_address(network: impl Into<String>) -> Self {
        Self {
            direction: Side::Source,
            network: network.into(),
            protocol: None,
            port: None,
        }
    }

    /// The target in the protocol's text form, e.g. `udp from 203.0.113.53 sport 53`.
    pub fn target_text(&self) -> String {
        let mut text = String::new();
        if let Some(protocol) = self.protocol {
            text.push_str(protocol.as_str());
            text.push(' ');
        }
        text.push_str(direction_word(self.direction));
        text.push(' ');
        text.push_str(self.network.trim());
        if let Some((side, port)) = self.port {
            text.push(' ');
            text.push_str(port_word(side));
            text.push(' ');
            text.push_str(&port.to_string());
        }
        text
    }

    /// What is wrong with the scope before the server is asked, in words; `None` when it can be
    /// sent (the server and the helper check everything again).
    pub fn problem(&self) -> Option<&'static str> {
        if self.network.trim().is_empty() {
            Some("Enter an address or a network, e.g. 203.0.113.66 or 203.0.113.0/24.")
        } else if self.port.is_some() && self.protocol.is_none() {
            Some("A port needs a protocol: choose TCP or UDP.")
        } else if matches!(self.port, Some((_, 0))) {
            Some("Port 0 cannot be matched.")
        } else {
            None
        }
    }
}

/// What the block form starts with for a suspect or a victim: its heading, the scope, the
/// reason (empty when nothing is an alarm: information is no case for a block) and a note on what
/// else the block drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSuggestion {
    pub title: String,
    pub scope: BlockScope,
    pub reason: String,
    pub note: Option<String>,
}

pub fn direction_word(side: Side) -> &'static str {
    match side {
        Side::Source => "from",
        Side::Destination => "to",
    }
}

pub fn port_word(side: Side) -> &'static str {
    match side {
        Side::Source => "sport",
        Side::Destination => "dport",
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use ctguard_protocol::BlockTarget;

    use super::*;

    #[test]
    fn the_text_form_is_what_the_protocol_parses() {
        let seed = BlockScope {
            direction: Side::Source,
            network: " 50.2.6.12 ".into(),
            protocol: Some(Protocol::Udp),
            port: Some((Side::Source, 53)),
        };
        assert_eq!(seed.target_text(), "udp from 50.2.6.12 sport 53");
        let parsed = BlockTarget::from_str(&seed.target_text()).expect("parses");
        assert_eq!(
            parsed.to_string(),
            seed.target_text(),
            "the same words back"
        );

        let web = BlockScope {
            direction: Side::Destination,
            network: "198.51.100.0/24".into(),
            protocol: Some(Protocol::Tcp),
            port: Some((Side::Destination, 80)),
        };
        assert_eq!(web.target_text(), "tcp to 198.51.100.0/24 dport 80");
        assert!(BlockTarget::from_str(&web.target_text()).is_ok());
        assert_eq!(
            BlockScope::from_address("203.0.113.66").target_text(),
            "from 203.0.113.66"
        );
    }

    #[test]
    fn a_scope_the_server_would_refuse_is_explained_first() {
        let mut scope = BlockScope::from_address("");
        assert!(
            scope
                .problem()
                .expect("empty")
                .contains("address or a network")
        );
        scope.network = "203.0.113.66".into();
        assert_eq!(scope.problem(), None);
        scope.port = Some((Side::Source, 53));
        assert!(
            scope
                .problem()
                .expect("no protocol")
                .contains("needs a protocol")
        );
        scope.protocol = Some(Protocol::Udp);
        assert_eq!(scope.problem(), None);
        scope.port = Some((Side::Source, 0));
        assert!(scope.problem().is_some());
    }
}
