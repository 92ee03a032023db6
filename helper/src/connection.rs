//! One client connection: peer check, handshake, then one response per request, in order.

use std::time::Duration;

use ctguard_protocol::{
    HelperError, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request, Response,
    frame::{self, FrameError},
};
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use crate::{peer::PeerIdentity, server::Shared};

/// A client that says nothing for this long is disconnected, so it cannot hold a slot forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Transport = Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>;

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
    let mut transport = Framed::new(stream, frame::codec());

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
            send(&mut transport, &Response::Error { error }).await;
            return;
        }
        Incoming::Request(_) => {
            send(&mut transport, &error(HelperError::HandshakeRequired)).await;
            return;
        }
        Incoming::Refused(refusal) | Incoming::Fatal(Some(refusal)) => {
            send(&mut transport, &error(refusal)).await;
            return;
        }
        Incoming::Fatal(None) | Incoming::Closed => return,
    }

    loop {
        match next(&mut transport).await {
            Incoming::Request(request) => {
                let name = request.name();
                let response = shared.handler.handle(request, peer).await;
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
                    send(&mut transport, &error(refusal)).await;
                }
                return;
            }
            Incoming::Closed => return,
        }
    }
}

fn error(error: HelperError) -> Response {
    Response::Error { error }
}

async fn next(transport: &mut Transport) -> Incoming {
    let frame = match tokio::time::timeout(IDLE_TIMEOUT, transport.next()).await {
        Err(_elapsed) => return Incoming::Fatal(None),
        Ok(None) => return Incoming::Closed,
        Ok(Some(Err(error))) if error.kind() == std::io::ErrorKind::InvalidData => {
            // The codec refuses an over-long length prefix before buffering the body.
            return Incoming::Fatal(Some(HelperError::FrameTooLarge {
                max: MAX_FRAME_BYTES,
            }));
        }
        Ok(Some(Err(_io))) => return Incoming::Fatal(None),
        Ok(Some(Ok(frame))) => frame,
    };
    match frame::decode::<Request>(&frame) {
        Ok(request) => Incoming::Request(request),
        Err(FrameError::TooLarge { max, .. }) => {
            Incoming::Fatal(Some(HelperError::FrameTooLarge { max }))
        }
        Err(FrameError::Malformed(detail)) => Incoming::Refused(HelperError::MalformedRequest {
            detail: detail.to_string(),
        }),
    }
}

/// Sends one response; false when the peer is gone.
async fn send(transport: &mut Transport, response: &Response) -> bool {
    let body = match frame::encode(response) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot encode a response");
            return false;
        }
    };
    transport.send(body).await.is_ok()
}
