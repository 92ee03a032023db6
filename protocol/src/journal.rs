//! The helper's audit journal as clients read it back: records of intents and outcomes, chained
//! by hashes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{
    sysctl::SysctlKey,
    target::{BlockDuration, BlockTarget, ShortText},
    trace::TraceEnd,
};

/// The result of checking the helper's whole journal, record by record, as
/// `ctguard-helper journal verify` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalCheck {
    /// Records that verified: all of them when `broken` is `None`, else those before the break.
    pub records: u64,
    /// The first broken record, in words (for admins: it names a record, not a secret).
    pub broken: Option<String>,
    /// False once a write failed: the helper then refuses every mutation until it restarts.
    pub writable: bool,
    /// The records the client named in `verify_journal` whose hash in the journal differs (or
    /// that the journal lacks): the journal was cut short and grown back, or rewritten.
    pub mismatches: Vec<JournalMismatch>,
}

/// A record as an answer named it: its sequence number and hash. The server keeps one with the
/// audit record of every change the helper carried out; the pair (not a count) is what proves
/// later that the journal still holds that very record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalRef {
    pub seq: u64,
    pub hash: RecordHash,
}

impl JournalRef {
    /// How many references one `verify_journal` request may carry: well inside a request frame.
    pub const MAX_PER_CHECK: usize = 64;
}

/// A record's hash as the journal spells it: 64 lowercase hex digits (SHA-256). Checked when it
/// is parsed, so a reference read from a frame or the audit store is well formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordHash(String);

impl RecordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RecordHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if text.len() == 64 && text.bytes().all(hex) {
            Ok(Self(text))
        } else {
            Err("a record hash is 64 lowercase hex digits".to_owned())
        }
    }
}

impl From<RecordHash> for String {
    fn from(hash: RecordHash) -> Self {
        hash.0
    }
}

impl std::fmt::Display for RecordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference the journal does not bear out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalMismatch {
    pub expected: JournalRef,
    /// The hash the journal holds at that sequence number; `None` when it holds no such record.
    pub found: Option<RecordHash>,
}

/// One line of the journal. `prev` is the `hash` of the record before (64 zeros for the first);
/// `hash` is the SHA-256 of this line's JSON without its `hash` field (the line up to
/// `,"hash":`, closed with `}`), in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalRecord {
    pub seq: u64,
    pub at_unix_ms: u64,
    pub prev: String,
    pub event: JournalEvent,
    pub hash: String,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalEvent {
    /// The helper is about to act. Written (and fsync'd) before the kernel is touched.
    Intent {
        action: JournalAction,
        actor: Option<ShortText>,
        requested_by: Option<IpAddr>,
        /// The peer's uid as the kernel reported it.
        peer_uid: Option<u32>,
    },
    /// How the intent `intent_seq` ended.
    Outcome {
        intent_seq: u64,
        ok: bool,
        detail: String,
    },
    /// The helper started (and with which journal it continues).
    Started { helper_version: String },
    /// The first record of a journal segment: the one before it was sealed under `sealed_as`
    /// with `records` records in all, the last of them hashing to this record's `prev`.
    SegmentStarted { sealed_as: String, records: u64 },
}

/// A mutation, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalAction {
    Block {
        target: BlockTarget,
        duration: BlockDuration,
        reason: ShortText,
    },
    Unblock {
        target: BlockTarget,
        reason: ShortText,
    },
    DeleteEntries {
        target: BlockTarget,
        reason: ShortText,
    },
    SetSysctl {
        key: SysctlKey,
        value: u64,
        persist: bool,
    },
    /// The helper put blocks back into the kernel after finding them missing.
    Reconcile { missing: u64 },
    /// A saved block that the guardrails refuse now (it covers a host address or a protected
    /// network, or is wider than allowed, or overlaps another), dropped instead of restored.
    DiscardSaved {
        target: BlockTarget,
        refusal: String,
    },
    /// A trace of the new flows matching `filter`, for `seconds`.
    StartTrace {
        filter: BlockTarget,
        seconds: u32,
        reason: ShortText,
    },
    /// A trace's end and its table's removal: stopped by a user (with their reason), expired,
    /// or left by an earlier run (then the filter is unknown).
    EndTrace {
        filter: Option<BlockTarget>,
        ended: TraceEnd,
        reason: Option<ShortText>,
    },
}

/// Which records to read: `limit` records starting at sequence number `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalPage {
    pub from: u64,
    /// 1..=[`JournalPage::MAX_LIMIT`].
    pub limit: u32,
}

impl JournalPage {
    pub const MAX_LIMIT: u32 = 500;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_hash_is_64_lowercase_hex_digits_and_nothing_else() {
        let good = "0123456789abcdef".repeat(4);
        assert!(RecordHash::try_from(good.clone()).is_ok());
        for bad in [
            good.to_uppercase(),
            good[..63].to_owned(),
            format!("{good}0"),
            format!("{}g", &good[..63]),
            String::new(),
        ] {
            assert!(RecordHash::try_from(bad.clone()).is_err(), "{bad:?}");
        }
        let frame = format!(r#"{{"seq":1,"hash":"{}"}}"#, good.to_uppercase());
        assert!(serde_json::from_str::<JournalRef>(&frame).is_err());
    }
}
