//! The contract between `ctguard-server` (unprivileged) and `ctguard-helper` (root): the closed set of
//! requests, their answers, and how they travel over the helper's Unix socket.
//!
//! # Wire format
//!
//! The socket carries *frames*. A frame is a 4-byte big-endian unsigned length `N` followed by `N` bytes
//! of UTF-8 JSON; `N` is at most [`MAX_FRAME_BYTES`] for answers and [`MAX_REQUEST_BYTES`] for
//! requests. A peer that announces a longer frame is sent one
//! [`Response::Error`] with [`HelperError::FrameTooLarge`] and disconnected.
//!
//! Every JSON object is *internally tagged* and rejects fields it does not know
//! (`deny_unknown_fields`), so a typo or a newer peer fails loudly instead of being half-understood:
//!
//! ```text
//! client → helper   {"request":"hello","protocol_version":8}
//! helper → client   {"response":"welcome","protocol_version":8,"helper_version":"0.1.0","netns":"ctg-host"}
//! client → helper   {"request":"status"}
//! helper → client   {"response":"status","status":{"count":12,"max":262144,...},
//!                    "helper":{"blocks_active":1,"journal_write_failures":0}}
//! client → helper   {"request":"block","target":{"network":"50.2.6.12/32","direction":"source",
//!                    "protocol":"udp","port":{"side":"source","port":53}},"duration":3600,
//!                    "reason":"DNS reflection","requested_by":"198.51.100.5","actor":"alice"}
//! helper → client   {"response":"blocked","block":{...,"journal_seq":41},"entries_deleted":6012,
//!                    "journal":{"seq":41,"hash":"9f2c…"}}
//! client → helper   {"request":"set_sysctl","key":"net.netfilter.nf_conntrack_max","value":262144,
//!                    "persist":false,"actor":"alice","requested_by":"198.51.100.5"}
//! helper → client   {"response":"error","error":{"kind":"requester_address",
//!                    "network":"198.51.100.0/24","address":"198.51.100.5"}}
//! ```
//!
//! Requests: `hello`, `status`, `snapshot`, `entries` (`filter`), `set_sysctl`, `block`, `unblock`,
//! `list_blocks`, `delete_entries`, `journal` (`page`), `verify_journal`, `kernel_log`,
//! `read_sysctls`, `creators`, `start_trace`, `stop_trace`, `trace`. Every request is a struct
//! variant, even one without fields (`{"request":"status"}`), or a mutation's payload struct
//! (`Request::Block(BlockRequest)`, serialised as the struct's fields beside the tag): serde
//! ignores unknown fields beside a unit variant's tag, and `deny_unknown_fields` must hold for all
//! of them. `list_blocks` answers each block with `packets_dropped` when the helper could read
//! the kernel's counters (absent otherwise).
//!
//! Values are validated while they are parsed, so a frame with an ill-formed value is refused
//! like an unknown field: a [`BlockTarget`]'s network must have no host bits set and a port needs
//! a protocol; a [`BlockDuration`] is 1 s..=30 days; a [`SysctlKey`] is one of the allowlisted
//! dotted names; reasons and actor names are 1..=200 characters without control characters.
//! Whether a well-formed target may be blocked (guardrails) is decided by the helper, which
//! answers each refusal with its own [`HelperError`] variant.
//!
//! Mutations (`set_sysctl`, `block`, `unblock`, `delete_entries`) are journaled by the helper
//! before they act; their answers carry the intent record's sequence number and hash
//! ([`JournalRef`]), which the server keeps with its audit record and later hands back to
//! `verify_journal` to prove the journal still holds that very record.
//! `status` also reports the helper's own state ([`HelperHealth`]): the blocks in force and the
//! journal writes that failed (after one, the helper refuses every mutation until it restarts).
//!
//! A conversation starts with exactly one `hello`; the helper answers `welcome` when the versions match
//! and [`HelperError::VersionMismatch`] (then closes) when they do not. After that the client sends any
//! number of requests, each answered by exactly one response, in order. Any error the helper reports
//! is a [`Response::Error`]; after a framing or handshake error the helper closes the connection, after
//! a failed request it keeps it open.
//!
//! This crate does no I/O beyond the optional tokio codec (feature `codec`), so the UI can compile it to
//! wasm and render the same types the helper sends.

pub mod address;
pub mod block;
pub mod creators;
pub mod journal;
pub mod kernel_log;
pub mod message;
pub mod snapshot;
pub mod status;
pub mod sysctl;
pub mod target;
pub mod trace;

#[cfg(feature = "codec")]
pub mod frame;

pub use block::ActiveBlock;
pub use creators::{CreatorCount, CreatorKey, CreatorList, CreatorWindow, Creators};
pub use ipnet::IpNet;
pub use journal::{
    JournalAction, JournalCheck, JournalEvent, JournalMismatch, JournalPage, JournalRecord,
    JournalRef, RecordHash,
};
pub use kernel_log::KernelLogSummary;
pub use message::{
    BlockRequest, DeleteEntriesRequest, HelperError, Request, Requested, Response,
    SetSysctlRequest, StartTraceRequest, StopTraceRequest, UnblockRequest,
};
pub use snapshot::{
    ConntrackEntry, EntryFilter, Group, Snapshot, SourcePort, SourceSport, SourceSpread, StateMix,
    TcpState, TopList,
};
pub use status::{ConntrackStats, ConntrackStatus, HelperHealth};
pub use sysctl::{ConntrackModule, SysctlKey, SysctlReading, SysctlScope, SysctlUnit};
pub use target::{BlockDuration, BlockTarget, PortMatch, Protocol, ShortText, Side};

/// The protocol version both sides must agree on in the `hello` handshake. Bump it on any change to
/// the JSON shape of a request or a response. 3: `status` answers carry `helper` ([`HelperHealth`]).
/// 4: requests are at most [`MAX_REQUEST_BYTES`]; errors `answer_too_large`, `too_many_blocks`,
/// `neigh_threshold_order` and `conntrack_table_too_large`; the journal action `discard_saved`;
/// the statistics `error`, `clash_resolve` and `chaintoolong`; networks in their canonical form
/// only (an IPv4-mapped network is sent and answered as IPv4, see [`address`]).
/// 5: mutation answers carry `journal` ([`JournalRef`]) instead of `journal_seq`;
/// `verify_journal` takes `expect` and answers `mismatches` (error `too_many_journal_refs`); the
/// journal event `segment_started`. 6: the error `internal` (the helper's own failure, such as a
/// worker task that panicked; before, it was reported as `kernel_read`); `sysctls` answers carry
/// `module` ([`ConntrackModule`]). 7: `snapshot` answers carry `destination_sources` and
/// `destination_services` (groups with their distinct sources). 8: the entry extension
/// `rule_helpers`. 9: the request `creators` ([`Creators`]: new flows counted by the kernel per
/// source, destination and service) and the error `too_many_creators`; the requests
/// `start_trace`, `stop_trace` and `trace` ([`trace`]), the errors `trace_running`,
/// `trace_length` and `no_trace`, the journal actions `start_trace` and `end_trace`. 10:
/// `creators` answers carry `watching_since` and `watch_from_percent` (who is turned away is
/// counted only while the table is near full).
pub const PROTOCOL_VERSION: u32 = 10;

/// The largest frame either side accepts, in bytes. Requests are tiny and responses are aggregates,
/// never raw table dumps, so 1 MiB leaves ample room while bounding what a confused peer can make us
/// buffer.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// The largest request the helper reads, in bytes. The largest real one (a block with a
/// 200-character reason) is under 2 KiB; a peer cannot make the root process buffer more than
/// this before it is refused and disconnected.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
