//! The server's side of the helper socket: connect, handshake, ask, with one deadline over it all.

use std::time::Duration;

use ctguard_app::live::HelperOutage;
use ctguard_protocol::{
    ConntrackStatus, HelperError, HelperHealth, KernelLogSummary, PROTOCOL_VERSION, Request,
    Response,
    frame::{self, FrameError},
};
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
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
            Self::Timeout(_) => HelperOutage::NotResponding,
            Self::Refused(_) | Self::Protocol(_) => HelperOutage::Refused,
            Self::Failed(_) => HelperOutage::KernelUnreadable,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HelperClient {
    settings: HelperSettings,
}

impl HelperClient {
    pub fn new(settings: HelperSettings) -> Self {
        Self { settings }
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

    /// Any request: the helper's answer, or its refusal as [`HelperClientError::Failed`].
    pub async fn call(&self, request: Request) -> Result<Response, HelperClientError> {
        self.exchange(request).await
    }

    /// One connection, one handshake, one request. A connection per exchange keeps no state that
    /// could go stale across helper restarts; on a Unix socket it costs microseconds.
    async fn exchange(&self, request: Request) -> Result<Response, HelperClientError> {
        let deadline = self.settings.timeout;
        tokio::time::timeout(deadline, async {
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
            match round_trip(&mut transport, &request).await? {
                Response::Error { error } => Err(HelperClientError::Failed(error)),
                response => Ok(response),
            }
        })
        .await
        .map_err(|_elapsed| HelperClientError::Timeout(deadline))?
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
