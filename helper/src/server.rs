//! The listening socket: created with mode 0660 and the configured group, accepting connections
//! until SIGTERM or Ctrl-C, each served on its own task with a cap on how many run at once.

use std::{
    os::unix::fs::{PermissionsExt, chown},
    path::Path,
    sync::Arc,
};

use anyhow::Context as _;
use nix::unistd::Group;
use tokio::{net::UnixListener, signal::unix::SignalKind, sync::Semaphore};

use crate::{config::HelperConfig, connection, handler::Handler, kernel::ProcFs, peer::PeerPolicy};

/// More would only mean a misbehaving client: the server keeps one or two connections open.
const MAX_CONNECTIONS: usize = 32;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub peers: PeerPolicy,
    pub handler: Handler,
}

pub async fn run(config: HelperConfig) -> anyhow::Result<()> {
    let listener = bind(&config.socket, &config.group)?;
    let shared = Arc::new(Shared {
        peers: config.peers.clone(),
        handler: Handler::new(ProcFs::default(), config.netns.map(|n| n.to_string())),
    });
    tracing::info!(
        socket = %config.socket.display(),
        group = %config.group,
        allowed_uids = ?shared.peers.allowed_uids().collect::<Vec<_>>(),
        "helper listening"
    );

    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!("too many connections; refusing one");
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    connection::serve(stream, &shared).await;
                    drop(slot);
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("helper stopping");
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

/// Binds the socket and restricts it before anyone can connect: mode 0660, owner root, the
/// server's group. A stale socket from a previous run is replaced.
fn bind(path: &Path, group: &str) -> anyhow::Result<UnixListener> {
    let group = Group::from_name(group)
        .with_context(|| format!("looking up group {group:?}"))?
        .with_context(|| format!("no such group {group:?}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "replaced a stale socket"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("removing {}", path.display())),
    }
    // Bind under a umask-independent window: the socket is created, then narrowed before the
    // accept loop starts, so no connection can be accepted with wider permissions.
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    chown(path, Some(0), Some(group.gid.as_raw()))
        .with_context(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}
