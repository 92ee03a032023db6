//! One handler per request, chosen by one exhaustive `match`: adding a request variant does not
//! compile until it is handled here. Kernel work and journal writes block, so they run on the
//! blocking pool, never on the async workers.

use std::sync::Arc;

use ctguard_protocol::{
    BlockRequest, DeleteEntriesRequest, EntryFilter, HelperError, HelperHealth, JournalPage,
    JournalRef, PROTOCOL_VERSION, Request, Requested, Response, SetSysctlRequest,
    StartTraceRequest, StopTraceRequest, UnblockRequest,
};

use crate::{
    blocks::{Blocks, Requester},
    creators::Counting,
    journal::Journal,
    kernel::ProcFs,
    peer::PeerIdentity,
    snapshot::{self, SnapshotCache},
    sysctl::Sysctls,
    trace::Tracer,
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
    counting: Arc<Counting>,
    tracer: Arc<Tracer>,
}

/// Runs blocking work off the async workers. A worker that panicked is the helper's own failure,
/// never the kernel's.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HelperError> + Send + 'static,
) -> Result<T, HelperError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join_error| HelperError::Internal {
            detail: format!("a worker task failed: {join_error}"),
        })?
}

impl Handler {
    pub fn new(
        procfs: ProcFs,
        netns: Option<String>,
        blocks: Arc<Blocks>,
        journal: Arc<Journal>,
        sysctls: Arc<Sysctls>,
        counting: Arc<Counting>,
        tracer: Arc<Tracer>,
    ) -> Self {
        Self {
            procfs,
            netns,
            blocks,
            journal,
            snapshots: SnapshotCache::new(std::time::Duration::from_secs(1)),
            entries_walk: tokio::sync::Mutex::new(()),
            sysctls,
            counting,
            tracer,
        }
    }

    pub fn welcome(&self) -> Response {
        Response::Welcome {
            protocol_version: PROTOCOL_VERSION,
            helper_version: env!("CARGO_PKG_VERSION").to_owned(),
            netns: self.netns.clone(),
        }
    }

    /// The helper's own state for `status`: two reads of memory that wait for no change in
    /// progress, so they can go with every status reading.
    pub fn health(&self) -> HelperHealth {
        HelperHealth {
            blocks_active: self.blocks.active(),
            journal_write_failures: self.journal.write_failures(),
        }
    }

    /// One line per request: what it asks, and who asks (for mutations: the payload's user and
    /// address, the kernel's peer uid).
    pub async fn handle(&self, request: Request, peer: PeerIdentity) -> Response {
        let who = |change: &dyn Requested| Requester::new(change, peer);
        let answer = match request {
            // A repeated hello is harmless: answer it as the first one was answered.
            Request::Hello { .. } => Ok(self.welcome()),
            Request::Status {} => self.status().await,
            Request::Snapshot {} => self.snapshot().await,
            Request::Entries { filter } => self.entries(filter).await,
            Request::SetSysctl(set) => self.set_sysctl(who(&set), set).await,
            Request::Block(block) => self.block(who(&block), block).await,
            Request::Unblock(unblock) => self.unblock(who(&unblock), unblock).await,
            Request::DeleteEntries(delete) => self.delete_entries(who(&delete), delete).await,
            Request::ListBlocks {} => self.list_blocks().await,
            Request::Journal { page } => self.journal_page(page).await,
            Request::VerifyJournal { expect } => self.verify_journal(expect).await,
            Request::KernelLog {} => kernel_log().await,
            Request::ReadSysctls {} => self.read_sysctls().await,
            Request::Creators { limit } => self.creators(limit),
            Request::StartTrace(start) => self.start_trace(who(&start), start).await,
            Request::StopTrace(stop) => self.stop_trace(who(&stop), stop).await,
            Request::Trace {} => self.trace().await,
        };
        answer.unwrap_or_else(|error| Response::Error { error })
    }

    async fn status(&self) -> Result<Response, HelperError> {
        let procfs = self.procfs.clone();
        let helper = self.health();
        let status = blocking(move || Ok(procfs.status()?)).await?;
        Ok(Response::Status { status, helper })
    }

    async fn snapshot(&self) -> Result<Response, HelperError> {
        let shared = self.snapshots.get(snapshot::walk_snapshot).await?;
        Ok(Response::Snapshot {
            snapshot: Box::new((*shared).clone()),
        })
    }

    async fn entries(&self, filter: EntryFilter) -> Result<Response, HelperError> {
        let _one_walk_at_a_time = self.entries_walk.lock().await;
        let (entries, truncated) = blocking(move || snapshot::entries(&filter)).await?;
        Ok(Response::Entries { entries, truncated })
    }

    async fn set_sysctl(
        &self,
        who: Requester,
        set: SetSysctlRequest,
    ) -> Result<Response, HelperError> {
        let sysctls = Arc::clone(&self.sysctls);
        let SetSysctlRequest {
            key,
            value,
            persist,
            ..
        } = set;
        let change = blocking(move || sysctls.set(key, value, persist, &who)).await?;
        Ok(Response::Sysctl {
            key,
            previous: change.previous,
            value: change.value,
            persisted: change.persisted,
            journal: change.journal,
        })
    }

    async fn block(&self, who: Requester, block: BlockRequest) -> Result<Response, HelperError> {
        let blocks = Arc::clone(&self.blocks);
        let BlockRequest {
            target,
            duration,
            reason,
            ..
        } = block;
        let (block, entries_deleted, journal) =
            blocking(move || blocks.block(target, duration, reason, &who)).await?;
        Ok(Response::Blocked {
            block,
            entries_deleted,
            journal,
        })
    }

    async fn unblock(
        &self,
        who: Requester,
        unblock: UnblockRequest,
    ) -> Result<Response, HelperError> {
        let blocks = Arc::clone(&self.blocks);
        let UnblockRequest { target, reason, .. } = unblock;
        let journal = blocking(move || blocks.unblock(target, reason, &who)).await?;
        Ok(Response::Unblocked { target, journal })
    }

    async fn delete_entries(
        &self,
        who: Requester,
        delete: DeleteEntriesRequest,
    ) -> Result<Response, HelperError> {
        let blocks = Arc::clone(&self.blocks);
        let DeleteEntriesRequest { target, reason, .. } = delete;
        let (deleted, journal) =
            blocking(move || blocks.delete_entries(target, reason, &who)).await?;
        Ok(Response::EntriesDeleted {
            target,
            deleted,
            journal,
        })
    }

    async fn list_blocks(&self) -> Result<Response, HelperError> {
        // The list's lock is held while a block runs nft: wait for it off the workers.
        let blocks = Arc::clone(&self.blocks);
        let blocks = blocking(move || Ok(blocks.list())).await?;
        Ok(Response::Blocks { blocks })
    }

    async fn journal_page(&self, page: JournalPage) -> Result<Response, HelperError> {
        let journal = Arc::clone(&self.journal);
        let (records, next) = blocking(move || journal.page(page)).await?;
        Ok(Response::Journal { records, next })
    }

    async fn verify_journal(&self, expect: Vec<JournalRef>) -> Result<Response, HelperError> {
        let journal = Arc::clone(&self.journal);
        let check = blocking(move || journal.check(&expect)).await?;
        Ok(Response::JournalCheck { check })
    }

    /// From memory: the counters were read on the counting task's schedule.
    fn creators(&self, limit: u16) -> Result<Response, HelperError> {
        let creators = Box::new(self.counting.answer(limit)?);
        Ok(Response::Creators { creators })
    }

    async fn start_trace(
        &self,
        who: Requester,
        start: StartTraceRequest,
    ) -> Result<Response, HelperError> {
        let tracer = Arc::clone(&self.tracer);
        let StartTraceRequest {
            filter,
            seconds,
            reason,
            ..
        } = start;
        let (trace, journal) =
            blocking(move || tracer.start(filter, seconds, reason, &who)).await?;
        Ok(Response::TraceStarted { trace, journal })
    }

    async fn stop_trace(
        &self,
        who: Requester,
        stop: StopTraceRequest,
    ) -> Result<Response, HelperError> {
        let tracer = Arc::clone(&self.tracer);
        let (trace, journal) = blocking(move || tracer.stop(stop.reason, &who)).await?;
        Ok(Response::TraceStopped { trace, journal })
    }

    async fn trace(&self) -> Result<Response, HelperError> {
        let tracer = Arc::clone(&self.tracer);
        let reading = blocking(move || tracer.reading()).await?;
        Ok(Response::Trace {
            running: reading.as_ref().is_some_and(|(_, running)| *running),
            reading: reading.map(|(reading, _)| Box::new(reading)),
        })
    }

    async fn read_sysctls(&self) -> Result<Response, HelperError> {
        let sysctls = Arc::clone(&self.sysctls);
        let (readings, module) =
            blocking(move || Ok((sysctls.read_all()?, sysctls.conntrack_module()))).await?;
        Ok(Response::Sysctls { readings, module })
    }
}

/// Counts conntrack's `table full` messages in the kernel log of the last minutes.
async fn kernel_log() -> Result<Response, HelperError> {
    use crate::kernel::kmsg;
    let dev_kmsg = std::path::Path::new(kmsg::DEV_KMSG);
    let log = blocking(move || Ok(kmsg::read_summary(dev_kmsg, kmsg::WINDOW)?)).await?;
    Ok(Response::KernelLog { log })
}

#[cfg(test)]
mod tests {
    //! What `status` says about the helper itself, through the same handler the socket uses.

    use std::net::IpAddr;

    use ctguard_protocol::{BlockDuration, BlockTarget, ShortText, SysctlKey};

    use super::*;
    use crate::{
        block_store::BlockStore,
        conntrack::{ConntrackError, EntryDeleter},
        firewall::{Element, Firewall, FirewallError, Observed},
        guard::Guardrails,
        kernel,
        state_dir::StateDir,
    };

    #[tokio::test]
    async fn a_worker_that_panics_is_the_helpers_own_failure_not_the_kernels() {
        let answer: Result<(), HelperError> =
            blocking(|| panic!("a bug in the helper, not the kernel")).await;
        assert!(
            matches!(&answer, Err(HelperError::Internal { detail }) if detail.contains("panic")),
            "{answer:?}"
        );
    }

    /// A kernel that takes every change: only the helper's own bookkeeping is under test here.
    #[derive(Debug)]
    struct AcceptingKernel;

    impl Firewall for AcceptingKernel {
        fn apply(&self, _: &[Element]) -> Result<(), FirewallError> {
            Ok(())
        }
        fn observe(&self) -> Result<Option<Observed>, FirewallError> {
            Ok(Some(Observed::of(&[])))
        }
    }

    impl EntryDeleter for AcceptingKernel {
        fn delete(&self, _: &BlockTarget) -> Result<u64, ConntrackError> {
            Ok(0)
        }
    }

    struct Fixture {
        handler: Handler,
        _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    fn handler_with(journal: Option<Journal>) -> Fixture {
        let procfs = kernel::tests::fixture(None);
        let state = tempfile::tempdir().expect("tempdir");
        let state_dir = Arc::new(StateDir::open(state.path()).expect("state dir"));
        let journal =
            Arc::new(journal.unwrap_or_else(|| Journal::open(&state_dir).expect("journal")));
        let blocks = Blocks::start(
            Guardrails::default(),
            Arc::clone(&journal),
            BlockStore::new(Arc::clone(&state_dir)),
            Box::new(AcceptingKernel),
            Box::new(AcceptingKernel),
            || Ok(vec!["203.0.113.1".parse().expect("addr")]),
        )
        .expect("starts");
        let sysctls = Sysctls::new(
            procfs.path().join("sys"),
            None,
            state_dir,
            Arc::clone(&journal),
        );
        Fixture {
            handler: Handler::new(
                ProcFs::at(procfs.path()),
                None,
                Arc::new(blocks),
                Arc::clone(&journal),
                Arc::new(sysctls),
                Arc::new(Counting::new(crate::creators::CountingConfig {
                    families: None,
                    set_size: crate::creators::DEFAULT_SET_SIZE,
                    sample_every: std::time::Duration::from_secs(10),
                    watch_from_percent: crate::creators::watch::DEFAULT_FROM_PERCENT,
                })),
                Arc::new(Tracer::new(Arc::clone(&journal))),
            ),
            _dirs: (procfs, state),
        }
    }

    fn text(s: &str) -> ShortText {
        ShortText::new(s).expect("text")
    }

    const ADMIN: &str = "198.51.100.5";
    const PEER: PeerIdentity = PeerIdentity { uid: 998, gid: 998 };

    fn block(target: &str) -> Request {
        Request::Block(BlockRequest {
            target: target.parse().expect("target"),
            duration: BlockDuration::from_secs(600).expect("duration"),
            reason: text("flood"),
            requested_by: ADMIN.parse::<IpAddr>().expect("addr"),
            actor: text("alice"),
        })
    }

    async fn health(handler: &Handler) -> HelperHealth {
        match handler.handle(Request::Status {}, PEER).await {
            Response::Status { status, helper } => {
                assert_eq!(status.count, 65_536, "the table's reading is there too");
                helper
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn status_counts_the_blocks_in_force() {
        let f = handler_with(None);
        assert_eq!(health(&f.handler).await, HelperHealth::default());
        for target in ["from 192.0.2.7", "udp from 50.2.6.12 sport 53"] {
            let response = f.handler.handle(block(target), PEER).await;
            assert!(matches!(response, Response::Blocked { .. }), "{response:?}");
        }
        assert_eq!(health(&f.handler).await.blocks_active, 2);
        let unblock = Request::Unblock(UnblockRequest {
            target: "from 192.0.2.7".parse().expect("target"),
            reason: text("over"),
            requested_by: ADMIN.parse().expect("addr"),
            actor: text("alice"),
        });
        let response = f.handler.handle(unblock, PEER).await;
        assert!(
            matches!(response, Response::Unblocked { .. }),
            "{response:?}"
        );
        assert_eq!(
            health(&f.handler).await,
            HelperHealth {
                blocks_active: 1,
                journal_write_failures: 0
            }
        );
    }

    #[tokio::test]
    async fn a_failed_journal_write_shows_in_status_and_so_does_every_refusal_after_it() {
        let f = handler_with(Some(Journal::on_full_disk()));
        assert_eq!(health(&f.handler).await.journal_write_failures, 0);

        // The block's intent cannot be written: refused, nothing blocked, one failure.
        let response = f.handler.handle(block("from 192.0.2.7"), PEER).await;
        assert!(
            matches!(
                response,
                Response::Error {
                    error: HelperError::JournalUnavailable { .. }
                }
            ),
            "{response:?}"
        );
        assert_eq!(
            health(&f.handler).await,
            HelperHealth {
                blocks_active: 0,
                journal_write_failures: 1
            }
        );

        // Any later mutation is refused by the journal until a restart, and counted.
        let response = f
            .handler
            .handle(
                Request::SetSysctl(SetSysctlRequest {
                    key: SysctlKey::NfConntrackMax,
                    value: 262_144,
                    persist: false,
                    actor: text("alice"),
                    requested_by: ADMIN.parse().expect("addr"),
                }),
                PEER,
            )
            .await;
        assert!(
            matches!(
                response,
                Response::Error {
                    error: HelperError::JournalUnavailable { .. }
                }
            ),
            "{response:?}"
        );
        assert_eq!(health(&f.handler).await.journal_write_failures, 2);
    }
}
