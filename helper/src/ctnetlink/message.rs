//! Netlink framing of the kernel's answers: one received datagram split into messages, and the
//! control messages that end or spoil a dump (NLMSG_DONE with its error code, NLMSG_ERROR,
//! NLM_F_DUMP_INTR, a datagram or a message cut short). Pure, so every case is tested on bytes.

use super::CtnetlinkError;

pub const HEADER_LEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 0x1;
/// Set by the netlink core on a dump's messages when the family's generation counter moved
/// while it dumped (`nl_dump_check_consistent`, called at least on NLMSG_DONE): what was sent may
/// miss or repeat entries.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

/// A request: a netlink header and an nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id 0). Written by
/// hand because it is 20 fixed bytes; a netlink crate would be a dependency for that alone.
pub fn request(kind: u16, flags: u16, sequence: u32) -> Vec<u8> {
    let len = (HEADER_LEN + 4) as u32;
    let mut request = Vec::with_capacity(len as usize);
    request.extend_from_slice(&len.to_ne_bytes());
    request.extend_from_slice(&kind.to_ne_bytes());
    request.extend_from_slice(&flags.to_ne_bytes());
    request.extend_from_slice(&sequence.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    request.extend_from_slice(&[0, 0, 0, 0]);
    request
}

/// Where an exchange stands after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// The kernel ended the answer: NLMSG_DONE with error 0, or an acknowledgement.
    Done,
}

/// What one exchange has seen so far, beyond the data handed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpState {
    /// Some message carried NLM_F_DUMP_INTR: the answer is not a consistent picture.
    pub interrupted: bool,
}

fn errno_at(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?))
}

/// Reads one datagram of `received` bytes (recv's answer with MSG_TRUNC: the datagram's real
/// length), of which `datagram` is what fit in the buffer. Every data message goes to
/// `each(kind, payload)`; control messages end the exchange or fail it.
pub fn read_datagram(
    datagram: &[u8],
    received: usize,
    state: &mut DumpState,
    mut each: impl FnMut(u16, &[u8]),
) -> Result<Progress, CtnetlinkError> {
    if received > datagram.len() {
        return Err(CtnetlinkError::Truncated {
            datagram: received,
            buffer: datagram.len(),
        });
    }
    let mut rest = datagram;
    while !rest.is_empty() {
        if rest.len() < HEADER_LEN {
            return Err(CtnetlinkError::Malformed(
                "bytes after the last message, too few for a header",
            ));
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let flags = u16::from_ne_bytes([rest[6], rest[7]]);
        if len < HEADER_LEN {
            return Err(CtnetlinkError::Malformed(
                "a message shorter than its header",
            ));
        }
        if len > rest.len() {
            return Err(CtnetlinkError::Malformed(
                "a message runs past the end of its datagram",
            ));
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            state.interrupted = true;
        }
        let payload = &rest[HEADER_LEN..len];
        match kind {
            NLMSG_NOOP => {}
            // netlink_dump_done: the dump callback's last return value travels in NLMSG_DONE;
            // negative means the dump stopped on an error and what came before is incomplete.
            NLMSG_DONE => {
                let errno = errno_at(payload).ok_or(CtnetlinkError::Malformed(
                    "NLMSG_DONE without its error code",
                ))?;
                return if errno < 0 {
                    // saturating: a hostile or corrupt i32::MIN must not panic (found by the fuzzer).
                    Err(CtnetlinkError::DumpFailed(errno.saturating_neg()))
                } else {
                    Ok(Progress::Done)
                };
            }
            // struct nlmsgerr: the error (0 = acknowledgement) and the request it answers.
            NLMSG_ERROR => {
                let errno = errno_at(payload).ok_or(CtnetlinkError::Malformed(
                    "NLMSG_ERROR without its error code",
                ))?;
                return if errno == 0 {
                    Ok(Progress::Done)
                } else {
                    Err(CtnetlinkError::Kernel(errno.saturating_abs()))
                };
            }
            NLMSG_OVERRUN => {
                return Err(CtnetlinkError::Malformed("the kernel reported an overrun"));
            }
            _ => each(kind, payload),
        }
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    Ok(Progress::More)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const CT_NEW: u16 = 1 << 8;

    /// One netlink message as the kernel lays it out, padded to 4 bytes.
    pub(crate) fn message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(HEADER_LEN + payload.len()).expect("small");
        let mut bytes = len.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&1u32.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    pub(crate) fn done(errno: i32, flags: u16) -> Vec<u8> {
        message(NLMSG_DONE, flags, &errno.to_ne_bytes())
    }

    fn error(errno: i32) -> Vec<u8> {
        let mut payload = errno.to_ne_bytes().to_vec();
        payload.extend_from_slice(&request(CT_NEW | 1, NLM_F_REQUEST | NLM_F_DUMP, 1)[..16]);
        message(NLMSG_ERROR, 0, &payload)
    }

    /// Reads a datagram whole and returns the outcome, the state and the payload lengths seen.
    fn read(datagram: &[u8]) -> (Result<Progress, CtnetlinkError>, DumpState, Vec<usize>) {
        let mut state = DumpState::default();
        let mut seen = Vec::new();
        let outcome = read_datagram(datagram, datagram.len(), &mut state, |kind, payload| {
            assert_eq!(kind, CT_NEW);
            seen.push(payload.len());
        });
        (outcome, state, seen)
    }

    #[test]
    fn data_messages_are_handed_on_and_done_ends_the_dump() {
        let datagram = [
            message(CT_NEW, 2, &[1; 8]),
            message(CT_NEW, 2, &[2; 5]),
            done(0, 2),
        ]
        .concat();
        let (outcome, state, seen) = read(&datagram);
        assert_eq!(outcome.expect("ends"), Progress::Done);
        assert_eq!(seen, [8, 5]);
        assert!(!state.interrupted);
        let (outcome, _, seen) = read(&message(CT_NEW, 2, &[0; 4]));
        assert_eq!(outcome.expect("reads"), Progress::More, "no DONE yet");
        assert_eq!(seen, [4]);
    }

    #[test]
    fn done_carrying_an_error_fails_the_dump() {
        let datagram = [message(CT_NEW, 2, &[1; 8]), done(-12, 2)].concat();
        let (outcome, _, seen) = read(&datagram);
        assert!(
            matches!(outcome, Err(CtnetlinkError::DumpFailed(12))),
            "ENOMEM: {outcome:?}"
        );
        assert_eq!(seen, [8], "what came before was still read");
        let (outcome, _, _) = read(&message(NLMSG_DONE, 2, &[]));
        assert!(
            matches!(outcome, Err(CtnetlinkError::Malformed(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn the_most_negative_error_code_is_an_error_not_a_panic() {
        // The fuzzer's crash-5948e314: NLMSG_DONE carrying i32::MIN, whose negation overflows.
        let (outcome, _, _) = read(&done(i32::MIN, 2));
        assert!(
            matches!(outcome, Err(CtnetlinkError::DumpFailed(i32::MAX))),
            "{outcome:?}"
        );
        let (outcome, _, _) = read(&error(i32::MIN));
        assert!(
            matches!(outcome, Err(CtnetlinkError::Kernel(i32::MAX))),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_error_message_fails_and_an_acknowledgement_ends() {
        let (outcome, _, _) = read(&error(-1));
        assert!(
            matches!(outcome, Err(CtnetlinkError::Kernel(1))),
            "EPERM: {outcome:?}"
        );
        let (outcome, _, _) = read(&error(0));
        assert_eq!(outcome.expect("an ack"), Progress::Done);
        let (outcome, _, _) = read(&message(NLMSG_ERROR, 0, &[0, 0]));
        assert!(
            matches!(outcome, Err(CtnetlinkError::Malformed(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_interrupted_dump_is_flagged_on_any_message_done_included() {
        let (outcome, state, _) =
            read(&[message(CT_NEW, 2, &[0; 4]), done(0, 2 | NLM_F_DUMP_INTR)].concat());
        assert_eq!(outcome.expect("ends"), Progress::Done);
        assert!(state.interrupted);
        let (_, state, _) = read(&message(CT_NEW, 2 | NLM_F_DUMP_INTR, &[0; 4]));
        assert!(state.interrupted);
    }

    #[test]
    fn a_datagram_larger_than_the_buffer_is_truncated_not_read() {
        let datagram = [message(CT_NEW, 2, &[1; 8]), done(0, 2)].concat();
        let mut state = DumpState::default();
        let mut seen = 0;
        // recv with MSG_TRUNC answers the datagram's real length: 100 bytes did not fit.
        let outcome = read_datagram(&datagram, datagram.len() + 100, &mut state, |_, _| {
            seen += 1
        });
        assert!(
            matches!(
                outcome,
                Err(CtnetlinkError::Truncated {
                    datagram: 144,
                    buffer: 44
                })
            ),
            "{outcome:?}"
        );
        assert_eq!(seen, 0, "nothing of a cut datagram is used");
    }

    #[test]
    fn a_message_running_past_its_datagram_or_shorter_than_a_header_is_malformed() {
        let whole = [message(CT_NEW, 2, &[1; 8]), message(CT_NEW, 2, &[2; 40])].concat();
        let (outcome, _, seen) = read(&whole[..whole.len() - 8]);
        assert!(
            matches!(outcome, Err(CtnetlinkError::Malformed(_))),
            "{outcome:?}"
        );
        assert_eq!(seen, [8]);
        let mut short = message(CT_NEW, 2, &[]);
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        let (outcome, _, _) = read(&short);
        assert!(
            matches!(outcome, Err(CtnetlinkError::Malformed(_))),
            "{outcome:?}"
        );
        let (outcome, _, _) = read(&[message(CT_NEW, 2, &[0; 4]), vec![0; 8]].concat());
        assert!(
            matches!(outcome, Err(CtnetlinkError::Malformed(_))),
            "trailing: {outcome:?}"
        );
    }

    #[test]
    fn any_bytes_never_panic() {
        let datagram = [message(CT_NEW, 2, &[1; 8]), done(0, 2)].concat();
        for end in 0..datagram.len() {
            let mut state = DumpState::default();
            let _ = read_datagram(&datagram[..end], end, &mut state, |_, _| {});
        }
        let mut state = DumpState::default();
        let _ = read_datagram(&[0xff; 64], 64, &mut state, |_, _| {});
    }
}
