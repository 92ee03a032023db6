//! One client connection: peer check, handshake, then one response per request, in order.
//! Bounded in every dimension: a request is at most `MAX_REQUEST_BYTES` and must arrive whole
//! within the idle timeout, an answer that would not fit a frame is replaced by an error saying
//! so, and a peer that does not read its answers is dropped after the write timeout.

use std::time::Duration;

use ctguard_protocol::{
    HelperError, MAX_FRAME_BYTES, MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response,
    frame::{self, FrameError},
};
use futures::{SinkExt, StreamExt};
use tokio::net::{
    UnixStream,
    unix::{OwnedReadHalf, OwnedWriteHalf},
};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::Instrument as _;

use crate::{listener::Shared, peer::PeerIdentity};

/// How long a client may take, each bound closing its connection when passed.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// To send its next request, whole: silence, or a request that trickles in byte by byte,
    /// cannot hold a connection slot forever (a request is read whole or not at all).
    pub idle: Duration,
    /// To take an answer: a peer that never reads must not hold a slot, nor a task, forever.
    pub write: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            write: Duration::from_secs(10),
        }
    }
}

/// Requests in (small frames), answers out (up to `MAX_FRAME_BYTES`).
struct Transport {
    requests: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    answers: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    limits: ClientLimits,
}

/// What reading the next request produced.
enum Incoming {
    Request(Request),
    /// A frame arrived but is not a request we know: answer the error, keep the connection.
    Refused(HelperError),
    /// The stream cannot go on (too large a frame, I/O error, idle): answer if possible, then close.
    Fatal(Option<HelperError>),
    Closed,
}

pub async fn serve(stream: UnixStream, shared: &Shared) {
    let peer = match stream.peer_cred() {
        Ok(cred) => PeerIdentity {
            uid: cred.uid(),
            gid: cred.gid(),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read peer credentials; closing");
            return;
        }
    };
    tracing::Span::current().record("uid", peer.uid);
    let (read, write) = stream.into_split();
    let mut transport = Transport {
        requests: FramedRead::new(read, frame::request_codec()),
        answers: FramedWrite::new(write, frame::codec()),
        limits: shared.limits,
    };

    if let Err(refusal) = shared.peers.check(peer) {
        tracing::warn!(uid = peer.uid, gid = peer.gid, "refused a peer");
        send(&mut transport, &Response::Error { error: refusal }).await;
        return;
    }

    match next(&mut transport).await {
        Incoming::Request(Request::Hello { protocol_version })
            if protocol_version == PROTOCOL_VERSION =>
        {
            send(&mut transport, &shared.handler.welcome()).await;
        }
        Incoming::Request(Request::Hello { protocol_version }) => {
            let error = HelperError::VersionMismatch {
                helper: PROTOCOL_VERSION,
                client: protocol_version,
            };
            tracing::warn!(%error, uid = peer.uid, "handshake failed");
            refuse_and_close(transport, error).await;
            return;
        }
        Incoming::Request(_) => {
            refuse_and_close(transport, HelperError::HandshakeRequired).await;
            return;
        }
        Incoming::Refused(refusal) | Incoming::Fatal(Some(refusal)) => {
            refuse_and_close(transport, refusal).await;
            return;
        }
        Incoming::Fatal(None) | Incoming::Closed => return,
    }

    loop {
        match next(&mut transport).await {
            Incoming::Request(request) => {
                let name = request.name();
                let response = shared
                    .handler
                    .handle(request, peer)
                    .instrument(tracing::info_span!("request", request = name))
                    .await;
                if let Response::Error { error } = &response {
                    tracing::warn!(request = name, uid = peer.uid, %error, "request failed");
                } else {
                    tracing::debug!(request = name, uid = peer.uid, "request answered");
                }
                if !send(&mut transport, &response).await {
                    return;
                }
            }
            Incoming::Refused(refusal) => {
                tracing::warn!(uid = peer.uid, %refusal, "refused a request");
                if !send(&mut transport, &error(refusal)).await {
                    return;
                }
            }
            Incoming::Fatal(refusal) => {
                if let Some(refusal) = refusal {
                    tracing::warn!(uid = peer.uid, %refusal, "closing a connection");
                    refuse_and_close(transport, refusal).await;
                }
                return;
            }
            Incoming::Closed => return,
        }
    }
}

/// How long, and how much, a refused peer's remaining input is read and dropped after the
/// refusal (see [`refuse_and_close`]).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 2 * 1024 * 1024;

/// Sends a refusal, then closes so that the peer can read it: the write side is shut first,
/// and what the peer was still sending (the rest of an oversized frame) is read and dropped for
/// a bounded time. Closing a Unix socket with unread input resets it, and the reset would
/// destroy the refusal before the peer read it.
async fn refuse_and_close(mut transport: Transport, refusal: HelperError) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !send(&mut transport, &error(refusal)).await {
        return;
    }
    let Transport {
        requests,
        mut answers,
        ..
    } = transport;
    let _ = answers.get_mut().shutdown().await;
    let mut input = requests.into_inner();
    let drain = async {
        let mut buffer = [0u8; 8192];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match input.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => dropped += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

fn error(error: HelperError) -> Response {
    Response::Error { error }
}

async fn next(transport: &mut Transport) -> Incoming {
    let frame = match tokio::time::timeout(transport.limits.idle, transport.requests.next()).await {
        Err(_elapsed) => return Incoming::Fatal(None),
        Ok(None) => return Incoming::Closed,
        Ok(Some(Err(error))) if error.kind() == std::io::ErrorKind::InvalidData => {
            // The codec refuses an over-long length prefix before buffering the body.
            return Incoming::Fatal(Some(HelperError::FrameTooLarge {
                max: MAX_REQUEST_BYTES,
            }));
        }
        Ok(Some(Err(_io))) => return Incoming::Fatal(None),
        Ok(Some(Ok(frame))) => frame,
    };
    match frame::decode::<Request>(&frame) {
        Ok(request) => Incoming::Request(request),
        Err(FrameError::TooLarge { .. }) => Incoming::Fatal(Some(HelperError::FrameTooLarge {
            max: MAX_FRAME_BYTES,
        })),
        Err(FrameError::Malformed(detail)) => Incoming::Refused(HelperError::MalformedRequest {
            detail: detail.to_string(),
        }),
    }
}

/// Sends one response; false when the peer is gone or does not read it in time. An answer too
/// large for a frame is replaced by the error that says so (never a silent close).
async fn send(transport: &mut Transport, response: &Response) -> bool {
    let body = match frame::encode(response) {
        Ok(body) => body,
        Err(FrameError::TooLarge { len, max }) => {
            tracing::error!(
                len,
                max,
                "an answer is too large for a frame; sending an error"
            );
            let refusal = error(HelperError::AnswerTooLarge { len, max });
            match frame::encode(&refusal) {
                Ok(body) => body,
                Err(_) => return false,
            }
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode a response");
            return false;
        }
    };
    match tokio::time::timeout(transport.limits.write, transport.answers.send(body)).await {
        Ok(sent) => sent.is_ok(),
        Err(_elapsed) => {
            tracing::warn!("a peer did not read its answer in time; closing");
            false
        }
    }
}
