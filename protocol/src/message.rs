//! The closed request and response enums and the errors the helper reports over the socket.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    block::ActiveBlock,
    creators::Creators,
    journal::{JournalCheck, JournalPage, JournalRecord, JournalRef},
    kernel_log::KernelLogSummary,
    snapshot::{ConntrackEntry, EntryFilter, Snapshot},
    status::{ConntrackStatus, HelperHealth},
    sysctl::{ConntrackModule, SysctlKey, SysctlReading},
    target::{BlockDuration, BlockTarget, ShortText},
    trace::{TraceInfo, TraceReading},
};

/// Everything a client can ask of the helper. The helper answers each variant in one exhaustive
/// `match`; anything else fails to parse and is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The first frame of every connection.
    Hello { protocol_version: u32 },
    /// The table's fill, limits, statistics and memory, read from procfs, and the helper's own
    /// state. Read-only. (A struct variant, not a unit one: serde ignores unknown fields beside the
    /// tag of a unit variant.)
    Status {},
    /// One aggregated walk of the table (shared with concurrent callers, rate-limited).
    Snapshot {},
    /// The entries matching a filter, at most `filter.limit` of them.
    Entries { filter: EntryFilter },
    /// Writes an allowlisted sysctl within its bounds and reads it back.
    SetSysctl(SetSysctlRequest),
    /// Drops a target's traffic before conntrack sees it, then deletes its existing entries.
    Block(BlockRequest),
    /// Removes a block the helper holds (the exact target it was created with).
    Unblock(UnblockRequest),
    /// The blocks the helper holds.
    ListBlocks {},
    /// Deletes a target's conntrack entries (both directions) without blocking it.
    DeleteEntries(DeleteEntriesRequest),
    /// A page of the helper's audit journal.
    Journal { page: JournalPage },
    /// Checks the whole journal's hash chain now, and that it holds each of `expect` (at most
    /// [`JournalRef::MAX_PER_CHECK`]) with that hash. Read-only.
    VerifyJournal { expect: Vec<JournalRef> },
    /// Counts of conntrack's `table full` messages in the kernel log of the last minutes. Read-only.
    KernelLog {},
    /// Every allowlisted sysctl's live and persisted value, each read where it lives. Read-only.
    ReadSysctls {},
    /// The top `limit` creators of new entries per key over the last 10 s, minute and 10
    /// minutes, from the kernel's counters (no walk of the table). Read-only.
    Creators { limit: u16 },
    /// Counts the new flows matching a filter for a while; one trace at a time.
    StartTrace(StartTraceRequest),
    /// Ends the running trace now and removes its table.
    StopTrace(StopTraceRequest),
    /// The running trace's counts, or the last one's final counts. Read-only.
    Trace {},
}

impl Request {
    /// A short, stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Status {} => "status",
            Self::Snapshot {} => "snapshot",
            Self::Entries { .. } => "entries",
            Self::SetSysctl(_) => "set_sysctl",
            Self::Block(_) => "block",
            Self::Unblock(_) => "unblock",
            Self::ListBlocks {} => "list_blocks",
            Self::DeleteEntries(_) => "delete_entries",
            Self::Journal { .. } => "journal",
            Self::VerifyJournal { .. } => "verify_journal",
            Self::KernelLog {} => "kernel_log",
            Self::ReadSysctls {} => "read_sysctls",
            Self::Creators { .. } => "creators",
            Self::StartTrace(_) => "start_trace",
            Self::StopTrace(_) => "stop_trace",
            Self::Trace {} => "trace",
        }
    }
}

/// Who asks for a change, as the server says: every mutation's payload carries the panel user
/// (`actor`) and the client address they ask from (`requested_by`, which the guardrails refuse to
/// block). The helper adds the peer's uid from the kernel.
pub trait Requested {
    fn actor(&self) -> &ShortText;
    fn requested_by(&self) -> IpAddr;
}

// Each mutation's payload is a struct of its own, so the helper's dispatch passes it on whole. A
// newtype variant of an internally tagged enum serialises as the struct's fields beside the tag,
// exactly as a struct variant does, so the wire format is the one the variants always had; each
// payload refuses unknown fields itself (the enum's `deny_unknown_fields` covers struct variants
// only).
macro_rules! requested {
    ($($payload:ty),+) => {$(
        impl Requested for $payload {
            fn actor(&self) -> &ShortText {
                &self.actor
            }
            fn requested_by(&self) -> IpAddr {
                self.requested_by
            }
        }
    )+};
}

requested!(
    SetSysctlRequest,
    BlockRequest,
    UnblockRequest,
    DeleteEntriesRequest,
    StartTraceRequest,
    StopTraceRequest
);

/// `set_sysctl`: `persist` also writes the value to the helper's sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSysctlRequest {
    pub key: SysctlKey,
    pub value: u64,
    pub persist: bool,
    pub actor: ShortText,
    pub requested_by: IpAddr,
}

/// `block`: drops `target`'s traffic for `duration`, then deletes its existing entries.
/// `requested_by` is the client address of the user asking: the helper refuses to block it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub target: BlockTarget,
    pub duration: BlockDuration,
    pub reason: ShortText,
    pub requested_by: IpAddr,
    pub actor: ShortText,
}

/// `unblock`: the exact target the block was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnblockRequest {
    pub target: BlockTarget,
    pub reason: ShortText,
    pub requested_by: IpAddr,
    pub actor: ShortText,
}

/// `delete_entries`: `target`'s entries in both directions (same guardrails as a block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteEntriesRequest {
    pub target: BlockTarget,
    pub reason: ShortText,
    pub requested_by: IpAddr,
    pub actor: ShortText,
}

/// `start_trace`: counts the new flows matching `filter` by source, destination and destination
/// port for `seconds` (at most [`crate::trace::MAX_TRACE_SECS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartTraceRequest {
    pub filter: BlockTarget,
    pub seconds: u32,
    pub reason: ShortText,
    pub requested_by: IpAddr,
    pub actor: ShortText,
}

/// `stop_trace`: ends the running trace now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopTraceRequest {
    pub reason: ShortText,
    pub requested_by: IpAddr,
    pub actor: ShortText,
}

/// Everything the helper can answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The handshake succeeded.
    Welcome {
        protocol_version: u32,
        helper_version: String,
        /// The named network namespace the helper watches, or `None` for its own.
        netns: Option<String>,
    },
    Status {
        status: ConntrackStatus,
        /// Since protocol version 3.
        helper: HelperHealth,
    },
    Snapshot {
        snapshot: Box<Snapshot>,
    },
    Entries {
        entries: Vec<ConntrackEntry>,
        /// More entries matched than `limit`.
        truncated: bool,
    },
    /// The sysctl was written and read back as `value`.
    Sysctl {
        key: SysctlKey,
        previous: u64,
        value: u64,
        persisted: bool,
        /// The intent record of the change.
        journal: JournalRef,
    },
    Blocked {
        block: ActiveBlock,
        /// Conntrack entries of the target deleted after the block was in place.
        entries_deleted: u64,
        /// The intent record of the block (`block.journal_seq` with its hash).
        journal: JournalRef,
    },
    Unblocked {
        target: BlockTarget,
        journal: JournalRef,
    },
    Blocks {
        blocks: Vec<ActiveBlock>,
    },
    EntriesDeleted {
        target: BlockTarget,
        deleted: u64,
        journal: JournalRef,
    },
    Journal {
        records: Vec<JournalRecord>,
        /// The `from` of the next page, if there is more.
        next: Option<u64>,
    },
    KernelLog {
        log: KernelLogSummary,
    },
    JournalCheck {
        check: JournalCheck,
    },
    /// One reading per allowlisted key, in [`SysctlKey::ALL`] order.
    Sysctls {
        readings: Vec<SysctlReading>,
        /// How nf_conntrack is in this kernel (how the hash size persists).
        module: ConntrackModule,
    },
    Creators {
        creators: Box<Creators>,
    },
    TraceStarted {
        trace: TraceInfo,
        journal: JournalRef,
    },
    TraceStopped {
        trace: TraceInfo,
        journal: JournalRef,
    },
    Trace {
        /// `None` when no trace ran since the helper started.
        reading: Option<Box<TraceReading>>,
        /// Whether `reading` is of a trace still running.
        running: bool,
    },
    Error {
        error: HelperError,
    },
}

/// Why the helper refused or failed a request. Each variant is a distinct cause a caller can act on;
/// `detail` strings are for operators' logs, never for a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HelperError {
    #[error("peer uid {uid} gid {gid} is not allowed to use the helper")]
    PeerNotAllowed { uid: u32, gid: u32 },
    #[error("protocol version mismatch: helper speaks {helper}, client {client}")]
    VersionMismatch { helper: u32, client: u32 },
    #[error("the first request of a connection must be hello")]
    HandshakeRequired,
    #[error("frame larger than {max} bytes")]
    FrameTooLarge { max: usize },
    #[error("the answer would take {len} bytes, more than a frame's {max}; ask for less")]
    AnswerTooLarge { len: usize, max: usize },
    #[error("this helper does not serve {request} requests")]
    Unsupported { request: String },
    #[error("malformed request: {detail}")]
    MalformedRequest { detail: String },
    #[error("kernel interface {path} could not be read: {detail}")]
    KernelRead { path: String, detail: String },
    /// The helper's own failure (a worker task that panicked): neither the request's nor the
    /// kernel's fault.
    #[error("the helper failed internally: {detail}")]
    Internal { detail: String },

    // Guardrails: each refusal is its own variant.
    #[error("{network} covers every address (a /0)")]
    EverythingTarget { network: IpNet },
    #[error("{network} is wider than the narrowest allowed /{minimum_prefix}")]
    PrefixTooWide { network: IpNet, minimum_prefix: u8 },
    #[error("{network} is or contains loopback addresses")]
    Loopback { network: IpNet },
    #[error("{network} is or contains link-local addresses")]
    LinkLocal { network: IpNet },
    #[error("{network} is or contains multicast or broadcast addresses")]
    Multicast { network: IpNet },
    #[error("{network} is or contains the unspecified address")]
    Unspecified { network: IpNet },
    #[error("{network} contains {address}, an address of this host")]
    HostAddress { network: IpNet, address: IpAddr },
    #[error("{network} contains {address}, the address of the user asking")]
    RequesterAddress { network: IpNet, address: IpAddr },
    #[error("{network} overlaps the protected network {protected}")]
    ProtectedNetwork { network: IpNet, protected: IpNet },
    #[error("{target} overlaps the existing block {existing}")]
    OverlapsBlock {
        target: BlockTarget,
        existing: BlockTarget,
    },
    #[error("no block for {target}")]
    NotBlocked { target: BlockTarget },
    #[error("{max} blocks are in force, the most the helper holds; unblock some first")]
    TooManyBlocks { max: usize },
    #[error("a trace of {filter} is running; stop it first")]
    TraceRunning { filter: BlockTarget },
    #[error("a trace lasts 1 to {max} seconds, not {seconds}")]
    TraceLength { seconds: u32, max: u32 },
    #[error("no trace is running")]
    NoTrace,
    #[error("a creators answer lists at most {max} per key, not {given}")]
    TooManyCreators { given: u16, max: u16 },
    #[error("a journal check takes at most {max} references, not {given}")]
    TooManyJournalRefs { given: usize, max: usize },

    // Argument checks beyond the types.
    #[error("{key} must be within {min}..={max}, not {value}")]
    SysctlOutOfBounds {
        key: SysctlKey,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("the kernel refused {key} = {value}: {detail}")]
    SysctlRefused {
        key: SysctlKey,
        value: u64,
        detail: String,
    },
    #[error("{key} was written as {written} but reads back {read}")]
    SysctlReadBack {
        key: SysctlKey,
        written: u64,
        read: u64,
    },
    #[error("could not persist to {path}: {detail}")]
    PersistFailed { path: String, detail: String },
    /// A neighbour threshold that would break `gc_thresh1 <= gc_thresh2 <= gc_thresh3` against
    /// the live value of another one (`other`).
    #[error(
        "{key} = {value} would break gc_thresh1 <= gc_thresh2 <= gc_thresh3: {other} is {other_value}"
    )]
    NeighThresholdOrder {
        key: SysctlKey,
        value: u64,
        other: SysctlKey,
        other_value: u64,
    },
    /// A full conntrack table at this limit (or with these buckets) would take more than
    /// `share_percent` of the host's RAM: `entry_bytes` per entry, 8 bytes per bucket.
    #[error(
        "{key} = {value} would let a full conntrack table take {table_bytes} bytes ({max} entries of {entry_bytes} B and {buckets} buckets of 8 B), more than {share_percent} % of the host's {memory_bytes} bytes of RAM"
    )]
    ConntrackTableTooLarge {
        key: SysctlKey,
        value: u64,
        max: u64,
        buckets: u64,
        entry_bytes: u64,
        table_bytes: u64,
        share_percent: u64,
        memory_bytes: u64,
    },
    #[error("limit must be 1..={max}, not {limit}")]
    LimitOutOfRange { limit: u32, max: u32 },

    // Failures.
    #[error("the journal cannot be written, so nothing was changed: {detail}")]
    JournalUnavailable { detail: String },
    #[error("the journal cannot be read: {detail}")]
    JournalRead { detail: String },
    #[error("nftables refused the change: {detail}")]
    Firewall { detail: String },
    #[error("conntrack failed: {detail}")]
    Conntrack { detail: String },
    #[error("the helper's state could not be saved: {detail}")]
    State { detail: String },
}
