//! The closed request and response enums and the errors the helper reports over the socket.

use serde::{Deserialize, Serialize};

use crate::{kernel_log::KernelLogSummary, status::ConntrackStatus};

/// Everything a client can ask of the helper. The helper answers each variant in one exhaustive
/// `match`; anything else fails to parse and is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The first frame of every connection.
    Hello { protocol_version: u32 },
    /// The table's fill, limits, statistics and memory, read from procfs. (A struct variant, not a
    /// unit one: serde ignores unknown fields beside the tag of a unit variant.)
    Status {},
    /// Counts of conntrack's `table full` messages in the kernel log of the last minutes. Read-only.
    KernelLog {},
}

impl Request {
    /// A short, stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Status {} => "status",
            Self::KernelLog {} => "kernel_log",
        }
    }
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
    },
    KernelLog {
        log: KernelLogSummary,
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
    #[error("malformed request: {detail}")]
    MalformedRequest { detail: String },
    #[error("kernel interface {path} could not be read: {detail}")]
    KernelRead { path: String, detail: String },
}
