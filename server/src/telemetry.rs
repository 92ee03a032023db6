//! Logging set-up: human-readable lines on stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Text a client chose (a username tried at sign-in, a header) goes into a field with `?`, never
//! `%`: Debug quotes it and escapes newlines and control characters, so it cannot end its line and
//! forge another, or drive the terminal that shows the log.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    // try_init: tests start several servers in one process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
