//! Parsing one ctnetlink entry (an nfgenmsg and its attributes) into a [`Flow`]. Pure and
//! allocation-free, so it is tested on bytes and costs little per entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ctguard_protocol::TcpState;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;

pub const IPS_SEEN_REPLY: u32 = 1 << 1;
pub const IPS_ASSURED: u32 = 1 << 2;
pub const IPS_SRC_NAT: u32 = 1 << 4;

/// One direction's addresses and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub protocol: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl Default for Tuple {
    fn default() -> Self {
        Self {
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            destination: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            protocol: 0,
            sport: None,
            dport: None,
        }
    }
}

/// One conntrack entry, as much of it as ctguard uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    pub original: Tuple,
    pub reply: Tuple,
    pub status: u32,
    pub tcp_state: Option<u8>,
    pub timeout_secs: u32,
}

impl Flow {
    pub fn unreplied(&self) -> bool {
        self.status & IPS_SEEN_REPLY == 0
    }
    pub fn assured(&self) -> bool {
        self.status & IPS_ASSURED != 0
    }
    /// The host rewrites this entry's source address (masquerade/SNAT of a guest).
    pub fn source_nat(&self) -> bool {
        self.status & IPS_SRC_NAT != 0
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        self.tcp_state.and_then(tcp_state)
    }
}

/// The kernel's `enum tcp_conntrack` values.
pub fn tcp_state(value: u8) -> Option<TcpState> {
    Some(match value {
        0 => TcpState::None,
        1 => TcpState::SynSent,
        2 => TcpState::SynRecv,
        3 => TcpState::Established,
        4 => TcpState::FinWait,
        5 => TcpState::CloseWait,
        6 => TcpState::LastAck,
        7 => TcpState::TimeWait,
        8 => TcpState::Close,
        9 => TcpState::Syn2,
        _ => return None,
    })
}

/// The protocol name `conntrack -L` prints.
pub fn protocol_name(number: u8) -> &'static str {
    match number {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

/// Iterates over netlink attributes: (type without flags, payload).
pub(crate) fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let payload = &bytes[4..len];
        bytes = bytes.get((len + 3) & !3..).unwrap_or_default();
        Some((kind, payload))
    })
}

fn be16(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?))
}

pub(crate) fn be32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

fn tuple(bytes: &[u8]) -> Tuple {
    let mut tuple = Tuple::default();
    for (kind, payload) in attributes(bytes) {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, payload) in attributes(payload) {
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => {
                            if let Some(a) = address(payload) {
                                tuple.source = a;
                            }
                        }
                        CTA_IP_V4_DST | CTA_IP_V6_DST => {
                            if let Some(a) = address(payload) {
                                tuple.destination = a;
                            }
                        }
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, payload) in attributes(payload) {
                    match kind {
                        CTA_PROTO_NUM => tuple.protocol = payload.first().copied().unwrap_or(0),
                        CTA_PROTO_SRC_PORT => tuple.sport = be16(payload),
                        CTA_PROTO_DST_PORT => tuple.dport = be16(payload),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    tuple
}

/// Parses the payload of an IPCTNL_MSG_CT_NEW message (nfgenmsg first). `None` when it has no
/// original tuple.
pub fn flow(payload: &[u8]) -> Option<Flow> {
    let attrs = payload.get(4..)?;
    let mut flow = Flow::default();
    let mut has_original = false;
    for (kind, payload) in attributes(attrs) {
        match kind {
            CTA_TUPLE_ORIG => {
                flow.original = tuple(payload);
                has_original = true;
            }
            CTA_TUPLE_REPLY => flow.reply = tuple(payload),
            CTA_STATUS => flow.status = be32(payload).unwrap_or(0),
            CTA_TIMEOUT => flow.timeout_secs = be32(payload).unwrap_or(0),
            CTA_PROTOINFO => {
                for (kind, payload) in attributes(payload) {
                    if kind == CTA_PROTOINFO_TCP {
                        for (kind, payload) in attributes(payload) {
                            if kind == CTA_PROTOINFO_TCP_STATE {
                                flow.tcp_state = payload.first().copied();
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    has_original.then_some(flow)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + payload.len()).expect("small");
        let mut bytes = len.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    fn nested(kind: u16, children: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &children.concat())
    }

    pub(crate) fn tcp_entry(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        state: u8,
        status: u32,
    ) -> Vec<u8> {
        let tuple = |s: [u8; 4], d: [u8; 4], sp: u16, dp: u16| {
            vec![
                nested(
                    CTA_TUPLE_IP,
                    &[attr(CTA_IP_V4_SRC, &s), attr(CTA_IP_V4_DST, &d)],
                ),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[6]),
                        attr(CTA_PROTO_SRC_PORT, &sp.to_be_bytes()),
                        attr(CTA_PROTO_DST_PORT, &dp.to_be_bytes()),
                    ],
                ),
            ]
        };
        let mut payload = vec![2, 0, 0, 0];
        payload.extend(nested(CTA_TUPLE_ORIG, &tuple(src, dst, sport, dport)));
        payload.extend(nested(CTA_TUPLE_REPLY, &tuple(dst, src, dport, sport)));
        payload.extend(attr(CTA_STATUS, &status.to_be_bytes()));
        payload.extend(attr(CTA_TIMEOUT, &431_999u32.to_be_bytes()));
        payload.extend(nested(
            CTA_PROTOINFO,
            &[nested(
                CTA_PROTOINFO_TCP,
                &[attr(CTA_PROTOINFO_TCP_STATE, &[state])],
            )],
        ));
        payload
    }

    #[test]
    fn an_established_tcp_entry_parses() {
        let bytes = tcp_entry(
            [203, 0, 113, 10],
            [198, 51, 100, 10],
            40_000,
            8080,
            3,
            IPS_SEEN_REPLY | IPS_ASSURED,
        );
        let flow = flow(&bytes).expect("parses");
        assert_eq!(
            flow.original.source,
            "203.0.113.10".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            flow.original.destination,
            "198.51.100.10".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(flow.original.sport, Some(40_000));
        assert_eq!(flow.original.dport, Some(8080));
        assert_eq!(flow.reply.source, flow.original.destination);
        assert_eq!(flow.original.protocol, 6);
        assert_eq!(flow.tcp_state(), Some(TcpState::Established));
        assert_eq!(flow.timeout_secs, 431_999);
        assert!(flow.assured());
        assert!(!flow.unreplied());
    }

    #[test]
    fn truncated_or_garbage_input_never_panics() {
        let bytes = tcp_entry([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 1, 0);
        for end in 0..bytes.len() {
            let _ = flow(&bytes[..end]);
        }
        assert_eq!(flow(&[]), None);
        assert_eq!(flow(&[0xff; 64]), None);
    }
}
