//! Reading the conntrack table over ctnetlink (what `conntrack -L` does), streaming: each
//! kernel datagram is parsed into [`Flow`]s handed to a callback and dropped, so a walk of
//! millions of entries holds one 64 KiB buffer, never the table. Also the per-CPU statistics
//! (what `conntrack -S` does, [`statistics`]).
//!
//! Why by hand on `netlink-sys` (a socket and nothing else) rather than nlink or
//! netlink-packet-netfilter: the dumps need one request each and the parse of a few attributes;
//! a few hundred lines we test against conntrack-tools cost less than pinning a fast-moving
//! crate, and the read path is the one that must be fast (no per-entry allocation here).
//!
//! Every exchange says when it failed: NLMSG_DONE's error code and NLMSG_ERROR end it with an
//! error, a datagram larger than the buffer (recv with MSG_TRUNC) or a message running past its
//! datagram is refused, and NLM_F_DUMP_INTR marks a walk that is not a consistent picture.

pub mod message;
pub mod parse;
pub mod stats;

use ctguard_protocol::status::CpuStats;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use message::{DumpState, NLM_F_DUMP, NLM_F_REQUEST, Progress};
pub use parse::Flow;

#[derive(Debug, thiserror::Error)]
pub enum CtnetlinkError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel refused the request: {}", errno_text(*.0))]
    Kernel(i32),
    #[error("the kernel stopped the dump on an error: {}", errno_text(*.0))]
    DumpFailed(i32),
    #[error(
        "a datagram of {datagram} bytes did not fit the {buffer}-byte buffer: the answer is cut"
    )]
    Truncated { datagram: usize, buffer: usize },
    #[error(
        "the table changed during the walk (NLM_F_DUMP_INTR): entries may be missing or repeated"
    )]
    Interrupted,
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// MSG_TRUNC (linux/socket.h): recv then answers a datagram's real length even when it did not
/// fit, which is how a cut datagram is told from a whole one.
const MSG_TRUNC: i32 = 0x20;
/// The kernel's dump datagrams are at most 32 KiB (`netlink_recvmsg` caps `max_recvmsg_len`), so a
/// datagram this buffer cannot hold is a fault, never normal.
const BUFFER_BYTES: usize = 64 * 1024;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
const CT_GET: u16 = (1 << 8) | 1;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW: how dumped entries arrive.
const CT_NEW: u16 = 1 << 8;
/// How many times a walk the kernel marked interrupted is started again before its answer is
/// given as it is, marked inconsistent.
pub const WALK_ATTEMPTS: u32 = 3;

/// A socket of the calling thread's network namespace, connected to the kernel.
fn open() -> Result<Socket, CtnetlinkError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(CtnetlinkError::Socket)?;
    socket.bind_auto().map_err(CtnetlinkError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(CtnetlinkError::Socket)?;
    // A larger receive buffer lets the kernel fill more datagrams per wake-up.
    let _ = socket.set_rx_buf_sz(1 << 20);
    Ok(socket)
}

/// Sends one request on a fresh socket and reads its answer to the end, handing every data
/// message to `each(kind, payload)`.
fn exchange(request: &[u8], mut each: impl FnMut(u16, &[u8])) -> Result<DumpState, CtnetlinkError> {
    let socket = open()?;
    socket.send(request, 0).map_err(CtnetlinkError::Socket)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let mut state = DumpState::default();
    loop {
        buffer.clear();
        let received = match socket.recv(&mut buffer, MSG_TRUNC) {
            Ok(0) => return Err(CtnetlinkError::Malformed("an empty datagram")),
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CtnetlinkError::Socket(error)),
        };
        if message::read_datagram(&buffer, received, &mut state, &mut each)? == Progress::Done {
            return Ok(state);
        }
    }
}

/// One pass over the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pass {
    entries: u64,
    interrupted: bool,
}

fn walk_once(each: &mut impl FnMut(&Flow)) -> Result<Pass, CtnetlinkError> {
    let mut entries = 0u64;
    let request = message::request(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1);
    let state = exchange(&request, |kind, payload| {
        if kind == CT_NEW
            && let Some(flow) = parse::flow(payload)
        {
            entries += 1;
            each(&flow);
        }
    })?;
    Ok(Pass {
        entries,
        interrupted: state.interrupted,
    })
}

/// Walks the whole table of the calling thread's network namespace once, calling `each` for
/// every entry. Returns the number of entries seen; a walk the kernel marked interrupted is an
/// error ([`CtnetlinkError::Interrupted`]), since `each` has already seen it. Callers that can
/// start over use [`walk_consistent`].
pub fn walk(mut each: impl FnMut(&Flow)) -> Result<u64, CtnetlinkError> {
    let pass = walk_once(&mut each)?;
    if pass.interrupted {
        return Err(CtnetlinkError::Interrupted);
    }
    Ok(pass.entries)
}

/// What a walk that may start over produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked<T> {
    /// What the last attempt built.
    pub value: T,
    pub entries: u64,
    /// Walks made (1 unless the kernel marked one interrupted).
    pub attempts: u32,
    /// `false`: every attempt was interrupted, and `value` may miss or repeat entries.
    pub consistent: bool,
}

/// Walks the table, building a value from `start()` with `each`; a walk the kernel marked
/// interrupted (NLM_F_DUMP_INTR) is started again from a fresh `start()`, up to
/// [`WALK_ATTEMPTS`] walks, and the last one's value is returned marked inconsistent.
pub fn walk_consistent<T>(
    start: impl FnMut() -> T,
    mut each: impl FnMut(&mut T, &Flow),
) -> Result<Walked<T>, CtnetlinkError> {
    retry_interrupted(WALK_ATTEMPTS, start, |value| {
        walk_once(&mut |flow| each(value, flow))
    })
}

fn retry_interrupted<T>(
    attempts: u32,
    mut start: impl FnMut() -> T,
    mut pass: impl FnMut(&mut T) -> Result<Pass, CtnetlinkError>,
) -> Result<Walked<T>, CtnetlinkError> {
    let mut attempt = 1;
    loop {
        let mut value = start();
        let done = pass(&mut value)?;
        if !done.interrupted || attempt >= attempts {
            if done.interrupted {
                tracing::warn!(
                    attempts = attempt,
                    "every walk of the table was interrupted"
                );
            }
            return Ok(Walked {
                value,
                entries: done.entries,
                attempts: attempt,
                consistent: !done.interrupted,
            });
        }
        tracing::info!(
            attempt,
            "the table changed during the walk (NLM_F_DUMP_INTR); walking again"
        );
        attempt += 1;
    }
}

/// The per-CPU statistics of the calling thread's namespace, one entry per CPU as the kernel
/// keeps them: the IPCTNL_MSG_CT_GET_STATS_CPU dump `conntrack -S` prints. Each CPU's counters
/// are read on their own by `ctnetlink_ct_stat_cpu_dump` (no generation to be interrupted), so
/// NLM_F_DUMP_INTR does not apply here.
pub fn statistics() -> Result<Vec<CpuStats>, CtnetlinkError> {
    let mut cpus = Vec::new();
    let mut short = false;
    let request = message::request(stats::CT_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP, 1);
    exchange(&request, |kind, payload| {
        if kind == stats::CT_GET_STATS_CPU {
            match stats::parse_cpu(payload) {
                Some(cpu) => cpus.push(cpu),
                None => short = true,
            }
        }
    })?;
    if short {
        return Err(CtnetlinkError::Malformed(
            "a CPU's statistics shorter than their header",
        ));
    }
    if cpus.is_empty() {
        return Err(CtnetlinkError::Malformed(
            "no CPU's statistics in the answer",
        ));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass that reports the kernel's interrupt flag as scripted, counting the starts.
    fn scripted(flags: &[bool]) -> (Result<Walked<u32>, CtnetlinkError>, u32) {
        let mut starts = 0;
        let mut script = flags.iter().copied();
        let walked = retry_interrupted(
            WALK_ATTEMPTS,
            || {
                starts += 1;
                0u32
            },
            |value| {
                *value += 1;
                Ok(Pass {
                    entries: 10,
                    interrupted: script.next().expect("no more walks scripted"),
                })
            },
        );
        (walked, starts)
    }

    #[test]
    fn an_interrupted_walk_starts_over_from_a_fresh_value() {
        let (walked, starts) = scripted(&[true, false]);
        let walked = walked.expect("walks");
        assert_eq!(starts, 2);
        assert_eq!(
            walked.value, 1,
            "the second walk's own value, not a sum of both"
        );
        assert_eq!(walked.attempts, 2);
        assert!(walked.consistent);
    }

    #[test]
    fn a_walk_interrupted_every_time_is_given_marked_inconsistent_after_the_bound() {
        let (walked, starts) = scripted(&[true, true, true]);
        let walked = walked.expect("walks");
        assert_eq!(starts, WALK_ATTEMPTS);
        assert_eq!(walked.attempts, WALK_ATTEMPTS);
        assert!(!walked.consistent);
    }

    #[test]
    fn a_clean_walk_is_walked_once() {
        let (walked, starts) = scripted(&[false]);
        assert_eq!(starts, 1);
        assert!(walked.expect("walks").consistent);
    }

    #[test]
    fn a_failed_walk_is_not_retried() {
        let mut starts = 0;
        let walked = retry_interrupted(
            WALK_ATTEMPTS,
            || starts += 1,
            |_| Err::<Pass, _>(CtnetlinkError::DumpFailed(12)),
        );
        assert!(matches!(walked, Err(CtnetlinkError::DumpFailed(12))));
        assert_eq!(starts, 1);
    }

    #[test]
    fn errors_name_the_errno() {
        let text = CtnetlinkError::DumpFailed(12).to_string();
        assert!(text.contains("os error 12"), "{text}");
    }
}
