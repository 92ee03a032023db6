//! The server's side of the helper socket: connect, handshake, ask, with one deadline over it all.
//! Every call draws on one of three lanes of bounded width, so no kind of caller can take the
//! helper's connections from another: the sampler (the dashboard of everyone) and confirmed
//! changes have capacity of their own that reads (walks of the table for any signed-in user)
//! cannot use.

use std::{sync::Arc, time::Duration};

use ctguard_app::dashboard::live::HelperOutage;
use ctguard_protocol::{
    ConntrackStatus, Creators, HelperError, HelperHealth, JournalRef, KernelLogSummary,
    PROTOCOL_VERSION, Request, Response,
    frame::{self, FrameError},
    trace::{TraceInfo, TraceReading},
};
use futures::{SinkExt, StreamExt};
use tokio::{net::UnixStream, sync::Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::configuration::HelperSettings;

#[derive(Debug, thiserror::Error)]
pub enum HelperClientError {
    #[error("cannot connect to the helper socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the helper did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the helper refused this server: {0}")]
    Refused(#[source] HelperError),
    #[error("the helper failed the request: {0}")]
    Failed(#[source] HelperError),
    #[error("the helper closed the connection")]
    Closed,
    #[error("connection to the helper broke: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected answer from the helper: {0}")]
    Protocol(String),
    #[error("every {0:?} call to the helper stayed busy for {1:?}")]
    Busy(Lane, Duration),
    /// The request went out and no answer came back (a timeout, a connection that closed or
    /// broke, a garbled answer): for a change, the helper may or may not have made it.
    #[error("the helper did not answer the request: {0}")]
    Unanswered(Box<HelperClientError>),
}

impl From<FrameError> for HelperClientError {
    fn from(error: FrameError) -> Self {
        Self::Protocol(error.to_string())
    }
}

impl HelperClientError {
    /// How to tell a person about it.
    pub fn outage(&self) -> HelperOutage {
        match self {
            Self::Connect(_) | Self::Closed | Self::Io(_) => HelperOutage::Unreachable,
            Self::Timeout(_) | Self::Busy(..) => HelperOutage::NotResponding,
            Self::Refused(_) | Self::Protocol(_) => HelperOutage::Refused,
            Self::Failed(_) => HelperOutage::KernelUnreadable,
            Self::Unanswered(cause) => cause.outage(),
        }
    }
}

/// Whose capacity a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The one sampler: a status read per second (and the kernel log), for every dashboard.
    Sampler,
    /// A confirmed change from its preview to its outcome: the reads that plan it and the write.
    Changes,
    /// Everything else: snapshots, drill-downs, the blocks list, settings, the journal check.
    Reads,
}

/// Calls in flight at once per lane. Together (7) well below the helper's own limit of 32
/// connections, so the helper never refuses the server for being busy; the sampler is one task
/// asking one thing at a time, changes are rare and confirmed by people, reads are what a crowd
/// of browsers (or one hostile one) can multiply.
const SAMPLER_WIDTH: usize = 1;
const CHANGES_WIDTH: usize = 2;
const READS_WIDTH: usize = 4;

/// The lanes' widths, shared by every client of one server.
#[derive(Debug)]
pub struct HelperLanes {
    sampler: Semaphore,
    changes: Semaphore,
    reads: Semaphore,
}

impl HelperLanes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            sampler: Semaphore::new(SAMPLER_WIDTH),
            changes: Semaphore::new(CHANGES_WIDTH),
            reads: Semaphore::new(READS_WIDTH),
        })
    }

    fn of(&self, lane: Lane) -> &Semaphore {
        match lane {
            Lane::Sampler => &self.sampler,
            Lane::Changes => &self.changes,
            Lane::Reads => &self.reads,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HelperClient {
    settings: HelperSettings,
    lanes: Arc<HelperLanes>,
    lane: Lane,
}

impl HelperClient {
    pub fn new(settings: HelperSettings, lanes: Arc<HelperLanes>, lane: Lane) -> Self {
        Self {
            settings,
            lanes,
            lane,
        }
    }

    /// The same client on another lane.
    pub fn in_lane(&self, lane: Lane) -> Self {
        Self {
            lane,
            ..self.clone()
        }
    }

    /// The table's reading and the helper's own state (blocks in force, journal failures).
    pub async fn status(&self) -> Result<(ConntrackStatus, HelperHealth), HelperClientError> {
        match self.exchange(Request::Status {}).await? {
            Response::Status { status, helper } => Ok((status, helper)),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn kernel_log(&self) -> Result<KernelLogSummary, HelperClientError> {
        match self.exchange(Request::KernelLog {}).await? {
            Response::KernelLog { log } => Ok(log),
            other => Err(unexpected(&other)),
        }
    }

    /// The top `limit` creators of new entries per key and window (at most
    /// [`ctguard_protocol::creators::MAX_CREATORS_PER_LIST`]), from the helper's memory: no walk.
    pub async fn creators(&self, limit: u16) -> Result<Creators, HelperClientError> {
        match self.exchange(Request::Creators { limit }).await? {
            Response::Creators { creators } => Ok(*creators),
            other => Err(unexpected(&other)),
        }
    }

    /// Starts a trace (issue 15), on the lane for confirmed changes: what it counts and until
    /// when, and the helper's journal record of the start.
    pub async fn start_trace(
        &self,
        request: Request,
    ) -> Result<(TraceInfo, JournalRef), HelperClientError> {
        match self.in_lane(Lane::Changes).exchange(request).await? {
            Response::TraceStarted { trace, journal } => Ok((trace, journal)),
            other => Err(unexpected(&other)),
        }
    }

    /// Ends the running trace, on the lane for confirmed changes.
    pub async fn stop_trace(
        &self,
        request: Request,
    ) -> Result<(TraceInfo, JournalRef), HelperClientError> {
        match self.in_lane(Lane::Changes).exchange(request).await? {
            Response::TraceStopped { trace, journal } => Ok((trace, journal)),
            other => Err(unexpected(&other)),
        }
    }

    /// The running trace's counts (or the last one's), whether it still runs; on the reads lane.
    pub async fn trace(&self) -> Result<(Option<Box<TraceReading>>, bool), HelperClientError> {
        match self
            .in_lane(Lane::Reads)
            .exchange(Request::Trace {})
            .await?
        {
            Response::Trace { reading, running } => Ok((reading, running)),
            other => Err(unexpected(&other)),
        }
    }

    /// Any request: the helper's answer, or its refusal as [`HelperClientError::Failed`].
    pub async fn call(&self, request: Request) -> Result<Response, HelperClientError> {
        self.exchange(request).await
    }

    /// One connection, one handshake, one request. A connection per exchange keeps no state that
    /// could go stale across helper restarts; on a Unix socket it costs microseconds. The wait for
    /// a place in the lane is bounded by the same deadline, then the exchange has its own.
    async fn exchange(&self, request: Request) -> Result<Response, HelperClientError> {
        let deadline = self.settings.timeout;
        let _place = tokio::time::timeout(deadline, self.lanes.of(self.lane).acquire())
            .await
            .map_err(|_elapsed| HelperClientError::Busy(self.lane, deadline))?
            // The semaphores are never closed.
            .map_err(|_closed| HelperClientError::Closed)?;
        // Whether the request itself went out: past that point a failure leaves its outcome
        // unknown, before it nothing was asked.
        let sent = std::sync::atomic::AtomicBool::new(false);
        let answer = tokio::time::timeout(deadline, async {
            let stream = UnixStream::connect(&self.settings.socket)
                .await
                .map_err(HelperClientError::Connect)?;
            let mut transport = Framed::new(stream, frame::codec());
            let hello = Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            };
            match round_trip(&mut transport, &hello).await? {
                Response::Welcome { .. } => {}
                Response::Error { error } => return Err(HelperClientError::Refused(error)),
                other => return Err(unexpected(&other)),
            }
            sent.store(true, std::sync::atomic::Ordering::SeqCst);
            match round_trip(&mut transport, &request).await? {
                Response::Error { error } => Err(HelperClientError::Failed(error)),
                response => Ok(response),
            }
        })
        .await
        .map_err(|_elapsed| HelperClientError::Timeout(deadline))
        .flatten();
        match answer {
            Err(error @ (HelperClientError::Failed(_) | HelperClientError::Refused(_))) => {
                Err(error)
            }
            Err(error) if sent.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(HelperClientError::Unanswered(Box::new(error)))
            }
            answer => answer,
        }
    }
}

async fn round_trip(
    transport: &mut Framed<UnixStream, LengthDelimitedCodec>,
    request: &Request,
) -> Result<Response, HelperClientError> {
    transport.send(frame::encode(request)?).await?;
    let body = transport.next().await.ok_or(HelperClientError::Closed)??;
    Ok(frame::decode(&body)?)
}

pub fn unexpected(response: &Response) -> HelperClientError {
    HelperClientError::Protocol(format!("{response:?}"))
}
