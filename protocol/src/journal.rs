//! The helper's audit journal as clients read it back: records of intents and outcomes, chained
//! by hashes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{
    sysctl::SysctlKey,
    target::{BlockDuration, BlockTarget, ShortText},
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
