//! The contract between `ctguard-server` (unprivileged) and `ctguard-helper` (root): the closed set of
//! requests, their answers, and how they travel over the helper's Unix socket.
//!
//! # Wire format
//!
//! The socket carries *frames*. A frame is a 4-byte big-endian unsigned length `N` followed by `N` bytes
//! of UTF-8 JSON; `N` is at most [`MAX_FRAME_BYTES`]. A peer that announces a longer frame is sent one
//! [`Response::Error`] with [`HelperError::FrameTooLarge`] and disconnected.
//!
//! Every JSON object is *internally tagged* and rejects fields it does not know
//! (`deny_unknown_fields`), so a typo or a newer peer fails loudly instead of being half-understood:
//!
//! ```text
//! client → helper   {"request":"hello","protocol_version":1}
//! helper → client   {"response":"welcome","protocol_version":1,"helper_version":"0.1.0","netns":"ctg-host"}
//! client → helper   {"request":"status"}
//! helper → client   {"response":"status","status":{"count":12,"max":262144,...}}
//! ```
//!
//! A conversation starts with exactly one `hello`; the helper answers `welcome` when the versions match
//! and [`HelperError::VersionMismatch`] (then closes) when they do not. After that the client sends any
//! number of requests, each answered by exactly one response, in order. Any error the helper reports
//! is a [`Response::Error`]; after a framing or handshake error the helper closes the connection, after
//! a failed request it keeps it open.
//!
//! This crate does no I/O beyond the optional tokio codec (feature `codec`), so the UI can compile it to
//! wasm and render the same types the helper sends.

pub mod kernel_log;
pub mod message;
pub mod status;

#[cfg(feature = "codec")]
pub mod frame;

pub use kernel_log::KernelLogSummary;
pub use message::{HelperError, Request, Response};
pub use status::{ConntrackStats, ConntrackStatus};

/// The protocol version both sides must agree on in the `hello` handshake. Bump it on any change to
/// the JSON shape of a request or a response.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts, in bytes. Requests are tiny and responses are aggregates,
/// never raw table dumps, so 1 MiB leaves ample room while bounding what a confused peer can make us
/// buffer.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
