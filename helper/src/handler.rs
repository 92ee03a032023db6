//! One handler per request, chosen by one exhaustive `match`: adding a request variant does not
//! compile until it is handled here. Kernel work and journal writes block, so they run on the
//! blocking pool, never on the async workers.

use std::sync::Arc;

use ctguard_protocol::{HelperError, PROTOCOL_VERSION, Request, Response};

use crate::{
    blocks::{Blocks, Requester},
    journal::Journal,
    kernel::ProcFs,
    peer::PeerIdentity,
    snapshot::{self, SnapshotCache},
    sysctl::Sysctls,
};

#[derive(Debug)]
pub struct Handler {
    procfs: ProcFs,
    netns: Option<String>,
    blocks: Arc<Blocks>,
    journal: Arc<Journal>,
    snapshots: SnapshotCache,
    /// Entries requests walk the whole table too: one at a time, so no client can make the
    /// kernel walk it in parallel.
    entries_walk: tokio::sync::Mutex<()>,
    sysctls: Arc<Sysctls>,
}

/// Runs blocking work off the async workers and turns its result into a response.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HelperError> + Send + 'static,
    respond: impl FnOnce(T) -> Response,
) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => respond(value),
        Ok(Err(error)) => Response::Error { error },
        Err(join_error) => Response::Error {
            error: HelperError::KernelRead {
                path: "helper".into(),
                detail: format!("worker task failed: {join_error}"),
            },
        },
    }
}

impl Handler {
    pub fn new(
        procfs: ProcFs,
        netns: Option<String>,
        blocks: Arc<Blocks>,
        journal: Arc<Journal>,
        sysctls: Arc<Sysctls>,
    ) -> Self {
        Self {
            procfs,
            netns,
            blocks,
            journal,
            snapshots: SnapshotCache::new(std::time::Duration::from_secs(1)),
            entries_walk: tokio::sync::Mutex::new(()),
            sysctls,
        }
    }

    pub fn welcome(&self) -> Response {
        Response::Welcome {
            protocol_version: PROTOCOL_VERSION,
            helper_version: env!("CARGO_PKG_VERSION").to_owned(),
            netns: self.netns.clone(),
        }
    }

    pub async fn handle(&self, request: Request, peer: PeerIdentity) -> Response {
        match request {
            // A repeated hello is harmless: answer it as the first one was answered.
            Request::Hello { .. } => self.welcome(),
            Request::Status {} => {
                let procfs = self.procfs.clone();
                blocking(
                    move || procfs.status().map_err(HelperError::from),
                    |status| Response::Status { status },
                )
                .await
            }
            Request::Block {
                target,
                duration,
                reason,
                requested_by,
                actor,
            } => {
                let blocks = Arc::clone(&self.blocks);
                let who = Requester {
                    actor,
                    requested_by,
                    peer_uid: peer.uid,
                };
                blocking(
                    move || blocks.block(target, duration, reason, &who),
                    |(block, entries_deleted)| Response::Blocked {
                        block,
                        entries_deleted,
                    },
                )
                .await
            }
            Request::Unblock {
                target,
                reason,
                requested_by,
                actor,
            } => {
                let blocks = Arc::clone(&self.blocks);
                let who = Requester {
                    actor,
                    requested_by,
                    peer_uid: peer.uid,
                };
                blocking(
                    move || blocks.unblock(target, reason, &who),
                    |journal_seq| Response::Unblocked {
                        target,
                        journal_seq,
                    },
                )
                .await
            }
            Request::ListBlocks {} => {
                // The list's lock is held while a block runs nft: wait for it off the workers.
                let blocks = Arc::clone(&self.blocks);
                blocking(
                    move || Ok(blocks.list()),
                    |blocks| Response::Blocks { blocks },
                )
                .await
            }
            Request::DeleteEntries {
                target,
                reason,
                requested_by,
                actor,
            } => {
                let blocks = Arc::clone(&self.blocks);
                let who = Requester {
                    actor,
                    requested_by,
                    peer_uid: peer.uid,
                };
                blocking(
                    move || blocks.delete_entries(target, reason, &who),
                    |(deleted, journal_seq)| Response::EntriesDeleted {
                        target,
                        deleted,
                        journal_seq,
                    },
                )
                .await
            }
            Request::Journal { page } => {
                let journal = Arc::clone(&self.journal);
                blocking(
                    move || journal.page(page),
                    |(records, next)| Response::Journal { records, next },
                )
                .await
            }
            Request::Snapshot {} => match self.snapshots.get(snapshot::walk_snapshot).await {
                Ok(shared) => Response::Snapshot {
                    snapshot: Box::new((*shared).clone()),
                },
                Err(error) => Response::Error { error },
            },
            Request::Entries { filter } => {
                let _one_walk_at_a_time = self.entries_walk.lock().await;
                blocking(
                    move || snapshot::entries(&filter),
                    |(entries, truncated)| Response::Entries { entries, truncated },
                )
                .await
            }
            Request::SetSysctl {
                key,
                value,
                persist,
                actor,
                requested_by,
            } => {
                let sysctls = Arc::clone(&self.sysctls);
                let who = Requester {
                    actor,
                    requested_by,
                    peer_uid: peer.uid,
                };
                blocking(
                    move || sysctls.set(key, value, persist, &who),
                    |change| Response::Sysctl {
                        key,
                        previous: change.previous,
                        value: change.value,
                        persisted: change.persisted,
                        journal_seq: change.journal_seq,
                    },
                )
                .await
            }
            Request::VerifyJournal {} => {
                let journal = Arc::clone(&self.journal);
                blocking(
                    move || journal.check(),
                    |check| Response::JournalCheck { check },
                )
                .await
            }
            Request::KernelLog {} => kernel_log().await,
            Request::ReadSysctls {} => {
                let sysctls = Arc::clone(&self.sysctls);
                blocking(
                    move || sysctls.read_all(),
                    |readings| Response::Sysctls { readings },
                )
                .await
            }
        }
    }
}

/// Counts conntrack's `table full` messages in the kernel log of the last minutes.
async fn kernel_log() -> Response {
    let reading = tokio::task::spawn_blocking(|| {
        crate::kernel::kmsg::read_summary(
            std::path::Path::new(crate::kernel::kmsg::DEV_KMSG),
            crate::kernel::kmsg::WINDOW,
        )
    })
    .await;
    match reading {
        Ok(Ok(log)) => Response::KernelLog { log },
        Ok(Err(error)) => Response::Error {
            error: error.into(),
        },
        Err(join_error) => Response::Error {
            error: ctguard_protocol::HelperError::KernelRead {
                path: crate::kernel::kmsg::DEV_KMSG.into(),
                detail: format!("reader task failed: {join_error}"),
            },
        },
    }
}
