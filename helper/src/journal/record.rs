//! One journal line: its byte-exact encoding and the hash that chains it to the line before.
//!
//! A line is the compact JSON of a [`JournalRecord`] whose last field is `hash`: the SHA-256 of
//! the same JSON without that field (the line up to `,"hash":"`, closed with `}`). Hashing the
//! exact bytes, not a re-serialisation, makes any changed byte visible.

use ctguard_protocol::{JournalEvent, JournalRecord};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_PREFIX: &str = ",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    at_unix_ms: u64,
    prev: &'a str,
    event: &'a JournalEvent,
}

/// Encodes a record: the line (without its newline) and its hash.
pub fn encode(
    seq: u64,
    at_unix_ms: u64,
    prev: &str,
    event: &JournalEvent,
) -> Result<(String, String), serde_json::Error> {
    let body = serde_json::to_string(&Body {
        seq,
        at_unix_ms,
        prev,
        event,
    })?;
    let hash = sha256_hex(body.as_bytes());
    let mut line = body;
    line.pop(); // the closing brace
    line.push_str(HASH_PREFIX);
    line.push_str(&hash);
    line.push_str("\"}");
    Ok((line, hash))
}

/// Why a line does not belong where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("the line does not end with its hash field")]
    NoHash,
    #[error("the line's hash does not match its content")]
    HashMismatch,
    #[error("the line is not a journal record: {0}")]
    NotARecord(String),
    #[error("the line's `prev` does not match the hash of the record before")]
    BrokenChain,
    #[error("sequence number {found}, expected {expected}")]
    Sequence { expected: u64, found: u64 },
}

/// Checks one line against the chain so far and returns its record.
pub fn check(line: &[u8], expected_seq: u64, prev: &str) -> Result<JournalRecord, LineError> {
    if line.len() < SUFFIX_LEN + 2 {
        return Err(LineError::NoHash);
    }
    let (head, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let stated = suffix
        .strip_prefix(HASH_PREFIX.as_bytes())
        .and_then(|rest| rest.strip_suffix(b"\"}"))
        .filter(|hex| hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or(LineError::NoHash)?;
    let mut body = head.to_vec();
    body.push(b'}');
    if sha256_hex(&body).as_bytes() != stated {
        return Err(LineError::HashMismatch);
    }
    let record: JournalRecord =
        serde_json::from_slice(line).map_err(|e| LineError::NotARecord(e.to_string()))?;
    if record.hash.as_bytes() != stated {
        // Only possible with duplicate keys; refuse whatever it is.
        return Err(LineError::HashMismatch);
    }
    if record.prev != prev {
        return Err(LineError::BrokenChain);
    }
    if record.seq != expected_seq {
        return Err(LineError::Sequence {
            expected: expected_seq,
            found: record.seq,
        });
    }
    Ok(record)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> JournalEvent {
        JournalEvent::Started {
            helper_version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_line_is_its_record_with_the_hash_last_and_checks_back() {
        let (line, hash) = encode(0, 1_700_000_000_000, GENESIS, &started()).expect("encodes");
        assert!(line.starts_with(r#"{"seq":0,"at_unix_ms":1700000000000,"prev":"000"#));
        assert!(line.ends_with(&format!(r#","hash":"{hash}"}}"#)));
        let record = check(line.as_bytes(), 0, GENESIS).expect("checks");
        assert_eq!(record.hash, hash);
        assert_eq!(record.event, started());
        let (next, _) = encode(1, 1_700_000_000_001, &hash, &started()).expect("encodes");
        assert!(check(next.as_bytes(), 1, &hash).is_ok());
        assert_eq!(
            check(next.as_bytes(), 1, GENESIS),
            Err(LineError::BrokenChain)
        );
        assert!(matches!(
            check(next.as_bytes(), 2, &hash),
            Err(LineError::Sequence { .. })
        ));
    }
}
