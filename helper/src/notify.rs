//! Telling systemd the helper is ready (`Type=notify`): one `READY=1` datagram to
//! `$NOTIFY_SOCKET`, sent once the socket accepts connections, so the server (ordered after the
//! helper) never races a socket that is not there yet.
//!
//! Why by hand: the protocol is one datagram on a Unix socket (sd_notify(3)); a crate for it
//! would add code to the root process for what std's `UnixDatagram` does in a few lines.

use std::os::{linux::net::SocketAddrExt, unix::net::UnixDatagram};

/// Sends `READY=1` (with a status line) when systemd asked for it; does nothing otherwise. A
/// failure is logged, not fatal: systemd then stops the unit at its start timeout, which says
/// more than a helper that refuses to run.
pub fn ready(status: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nSTATUS={status}\n");
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket: '@' stands for the leading NUL byte.
            Some(name) => {
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &address)
            }
            None => socket.send_to(message.as_bytes(), &path),
        }
    });
    if let Err(error) = sent {
        tracing::error!(%error, "cannot notify systemd that the helper is ready");
    }
}
