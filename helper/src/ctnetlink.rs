//! Reading the conntrack table over ctnetlink (what `conntrack -L` does), streaming: each
//! kernel datagram is parsed into [`Flow`]s handed to a callback and dropped, so a walk of
//! millions of entries holds one 64 KiB buffer, never the table.
//!
//! Why by hand on `netlink-sys` (a socket and nothing else) rather than nlink or
//! netlink-packet-netfilter: the dump needs one request and the parse of six attributes; a
//! hundred lines we test against conntrack-tools cost less than pinning a fast-moving crate, and
//! the read path is the one that must be fast (no per-entry allocation here).

pub mod parse;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

pub use parse::Flow;

#[derive(Debug, thiserror::Error)]
pub enum CtnetlinkError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel refused the dump: errno {0}")]
    Kernel(i32),
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
const CT_GET: u16 = (1 << 8) | 1;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW: how dumped entries arrive.
const CT_NEW: u16 = 1 << 8;
const HEADER_LEN: usize = 16;

/// The dump request: a netlink header and an nfgenmsg for every address family.
fn dump_request() -> Vec<u8> {
    let len = (HEADER_LEN + 4) as u32;
    let mut request = Vec::with_capacity(len as usize);
    request.extend_from_slice(&len.to_ne_bytes());
    request.extend_from_slice(&CT_GET.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    request.extend_from_slice(&[0, 0, 0, 0]); // AF_UNSPEC, NFNETLINK_V0, res_id 0
    request
}

/// Walks the whole table of the calling thread's network namespace, calling `each` for every
/// entry. Returns the number of entries seen.
pub fn walk(mut each: impl FnMut(&Flow)) -> Result<u64, CtnetlinkError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(CtnetlinkError::Socket)?;
    socket.bind_auto().map_err(CtnetlinkError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(CtnetlinkError::Socket)?;
    // A larger receive buffer lets the kernel fill more datagrams per wake-up.
    let _ = socket.set_rx_buf_sz(1 << 20);
    socket
        .send(&dump_request(), 0)
        .map_err(CtnetlinkError::Socket)?;

    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut seen = 0u64;
    loop {
        buffer.clear();
        let received = match socket.recv(&mut buffer, 0) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CtnetlinkError::Socket(error)),
        };
        if received > buffer.len() {
            return Err(CtnetlinkError::Malformed("datagram larger than the buffer"));
        }
        let mut rest = &buffer[..];
        while rest.len() >= HEADER_LEN {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < HEADER_LEN || len > rest.len() {
                return Err(CtnetlinkError::Malformed("bad message length"));
            }
            let payload = &rest[HEADER_LEN..len];
            match kind {
                NLMSG_DONE => return Ok(seen),
                NLMSG_ERROR => {
                    let errno = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .ok_or(CtnetlinkError::Malformed("short error message"))?;
                    if errno != 0 {
                        return Err(CtnetlinkError::Kernel(-errno));
                    }
                }
                CT_NEW => {
                    if let Some(flow) = parse::flow(payload) {
                        seen += 1;
                        each(&flow);
                    }
                }
                _ => {}
            }
            let aligned = (len + 3) & !3;
            rest = rest.get(aligned..).unwrap_or_default();
        }
    }
}
