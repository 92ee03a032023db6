//! Noticing at once when anyone changes nftables in the watched namespace: a netlink socket in
//! the `NFNLGRP_NFTABLES` multicast group, which the kernel tells of every table, chain, rule,
//! set and element change (what `nft monitor` listens to). After `nft flush ruleset` the blocks
//! are back within a second instead of at the next periodic reconcile, which stays as the
//! backstop for anything a notification could miss.
//!
//! Why a socket of our own instead of `nft monitor`: one `recv` loop, no child to supervise,
//! and the message contents do not matter (any change means "look again").

use std::sync::Arc;

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};
use tokio::sync::Notify;

/// `NFNLGRP_NFTABLES` (include/uapi/linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;

/// Subscribes to nftables changes in this thread's network namespace (the watched one: the
/// helper entered it before any thread existed) and wakes `changed` after each batch of them.
/// Runs until the socket fails; each failure is logged, and the periodic reconcile still runs.
pub fn spawn(changed: Arc<Notify>) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.add_membership(NFNLGRP_NFTABLES)?;
    std::thread::Builder::new()
        .name("nft-watch".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match socket.recv(&mut &mut buffer[..], 0) {
                    Ok(_) => changed.notify_one(),
                    // ENOBUFS: changes came faster than we read; what was lost was a change too.
                    Err(error)
                        if error.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) =>
                    {
                        changed.notify_one();
                    }
                    Err(error) => {
                        tracing::error!(%error, "nftables change notifications stopped");
                        changed.notify_one();
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
