//! The listening socket: created with mode 0660 and the configured group, accepting connections
//! until SIGTERM or Ctrl-C, each served on its own task with a cap on how many run at once.

use std::{
    os::unix::fs::{PermissionsExt, chown},
    path::Path,
    sync::Arc,
};

use anyhow::Context as _;
use nix::unistd::Group;
use tokio::{
    net::UnixListener,
    signal::unix::SignalKind,
    sync::{Notify, Semaphore},
};
use tracing::Instrument as _;

use crate::{
    block_store::BlockStore, blocks::Blocks, config::HelperConfig, connection,
    conntrack::ConntrackTool, creators::Counting, firewall::nft::Nft, guard, handler::Handler,
    journal::Journal, kernel::ProcFs, peer::PeerPolicy, state_dir::StateDir, sysctl::Sysctls,
    trace::Tracer,
};
use ctguard_protocol::JournalEvent;

/// More would only mean a misbehaving client: the server keeps one or two connections open.
const MAX_CONNECTIONS: usize = 32;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub peers: PeerPolicy,
    pub limits: connection::ClientLimits,
    pub handler: Handler,
}

pub async fn run(config: HelperConfig, initial_netns: Option<std::fs::File>) -> anyhow::Result<()> {
    // The state directory and the two locks come before anything is read or written: a second
    // helper on the same state or the same table stops here, leaving the first one's journal
    // and socket alone.
    let state = Arc::new(StateDir::open(&config.state_dir)?);
    let _one_per_state = state.lock().map_err(|error| {
        single_instance_error(
            error,
            &format!("the state directory {}", state.path().display()),
        )
    })?;
    let _one_per_table = lock_watched_table()?;
    // The journal comes first: without it the helper will not start (fail closed).
    let journal = Arc::new(Journal::open_with_segments_of(
        &state,
        config.journal_segment_bytes,
    )?);
    journal
        .append(&JournalEvent::Started {
            helper_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .context("writing the start record to the journal")?;
    let blocks = Arc::new(
        Blocks::start(
            config.guard.clone(),
            Arc::clone(&journal),
            BlockStore::new(Arc::clone(&state)),
            Box::new(Nft::default()),
            Box::new(ConntrackTool),
            || guard::host_addresses().map_err(|e| e.to_string()),
        )
        .context("restoring the blocks")?,
    );
    let changed = Arc::new(Notify::new());
    if let Err(error) = crate::firewall::watch::spawn(Arc::clone(&changed)) {
        tracing::error!(%error, "cannot watch nftables for changes; reconciling on the timer only");
    }
    spawn_reconciler(Arc::clone(&blocks), config.reconcile_interval, changed);
    let sysctls = Arc::new(
        Sysctls::new(
            "/proc/sys",
            initial_netns,
            Arc::clone(&state),
            Arc::clone(&journal),
        )
        .watching(config.netns.as_ref().map(|n| n.to_string())),
    );
    sysctls.reapply_watched_namespace();
    let counting = Arc::new(Counting::new(config.counting));
    counting.spawn();
    let tracer = Arc::new(Tracer::new(Arc::clone(&journal)));
    if let Err(error) = tracer.remove_leftover() {
        tracing::error!(%error, "cannot remove a trace table an earlier run left");
    }
    tracer.spawn_expiry();

    let listener = bind(&config.socket, &config.group)?;
    let shared = Arc::new(Shared {
        peers: config.peers.clone(),
        limits: config.client_limits,
        handler: Handler::new(
            ProcFs::default().with_stats_source(config.stats_source),
            config.netns.map(|n| n.to_string()),
            blocks,
            journal,
            sysctls,
            Arc::clone(&counting),
            Arc::clone(&tracer),
        ),
    });
    tracing::info!(
        socket = %config.socket.display(),
        group = %config.group,
        allowed_uids = ?shared.peers.allowed_uids().collect::<Vec<_>>(),
        "helper listening"
    );
    crate::notify::ready(&format!("listening on {}", config.socket.display()));

    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut connections: u64 = 0;
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
                connections += 1;
                // One span per connection: every line it logs says which one (and, once the
                // peer is known, whose: `serve` records the uid).
                let span = tracing::info_span!("connection", id = connections, uid = tracing::field::Empty);
                tokio::spawn(
                    async move {
                        connection::serve(stream, &shared).await;
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("helper stopping");
    let removing = Arc::clone(&counting);
    let _ = tokio::task::spawn_blocking(move || removing.remove()).await;
    let _ = tokio::task::spawn_blocking(move || tracer.stop_with_helper()).await;
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

/// The watched namespace's exclusive lock: `flock` on its nsfs file, which every process in that
/// namespace opens as the same inode, so two helpers with different state directories still
/// cannot both own one table's `inet ctguard`.
fn lock_watched_table() -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let namespace =
        std::fs::File::open("/proc/self/ns/net").context("opening /proc/self/ns/net")?;
    nix::fcntl::Flock::lock(namespace, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| single_instance_error(errno.into(), "the watched network namespace's table"),
    )
}

/// The error a second helper stops with.
fn single_instance_error(error: std::io::Error, what: &str) -> anyhow::Error {
    if error.raw_os_error() == Some(nix::errno::Errno::EWOULDBLOCK as i32) {
        anyhow::anyhow!(
            "another ctguard-helper is already running on {what}: refusing to start a second \
             one (its socket and journal are left alone)"
        )
    } else {
        anyhow::Error::new(error).context(format!("locking {what}"))
    }
}

/// How long after a change notification the reconcile waits, so that one `nft -f` transaction
/// (many notifications) costs one look at the table.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Checks `table inet ctguard` against the state whenever nftables changes (`changed`) and every
/// `interval` in any case, and restores it on drift (e.g. after `nft flush ruleset`).
fn spawn_reconciler(blocks: Arc<Blocks>, interval: std::time::Duration, changed: Arc<Notify>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; start() just applied the state
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = changed.notified() => tokio::time::sleep(SETTLE).await,
            }
            let blocks = Arc::clone(&blocks);
            match tokio::task::spawn_blocking(move || blocks.reconcile()).await {
                Ok(Ok(drift)) if drift.is_empty() => tracing::debug!("no drift"),
                Ok(Ok(drift)) => tracing::warn!(?drift, "drift repaired"),
                Ok(Err(error)) => tracing::error!(%error, "reconcile failed"),
                Err(error) => tracing::error!(%error, "reconcile task failed"),
            }
        }
    });
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
