//! The frame codec: 4-byte big-endian length, then JSON, at most [`MAX_FRAME_BYTES`].

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::codec::LengthDelimitedCodec;

use crate::{MAX_FRAME_BYTES, MAX_REQUEST_BYTES};

/// Why a frame could not be built or understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("message of {len} bytes exceeds the {max}-byte frame limit")]
    TooLarge { len: usize, max: usize },
    #[error("frame is not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The length-delimited codec both sides wrap their socket in. Its decoder refuses (with an
/// `io::Error`) any frame announcing more than [`MAX_FRAME_BYTES`] before buffering it.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Serialises a message into a frame body, refusing one the peer would refuse.
pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, FrameError> {
    let body = serde_json::to_vec(message)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(Bytes::from(body))
}

/// The helper's side of the codec: it reads requests, which are far smaller than answers, so it
/// refuses any frame announcing more than [`MAX_REQUEST_BYTES`] before buffering it.
pub fn request_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_REQUEST_BYTES)
        .new_codec()
}

/// Parses a frame body into a message.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{FramedRead, FramedWrite};

    use super::*;
    use crate::{
        ActiveBlock, BlockDuration, BlockRequest, BlockTarget, ConntrackStats, ConntrackStatus,
        DeleteEntriesRequest, EntryFilter, HelperError, HelperHealth, JournalPage,
        PROTOCOL_VERSION, Protocol, Request, Response, SetSysctlRequest, ShortText,
        StartTraceRequest, StopTraceRequest, SysctlKey, UnblockRequest,
    };

    fn text(s: &str) -> ShortText {
        ShortText::new(s).expect("valid text")
    }

    fn seed_target() -> BlockTarget {
        "udp from 50.2.6.12 sport 53".parse().expect("target")
    }

    fn sample_status() -> ConntrackStatus {
        ConntrackStatus {
            count: 65_536,
            max: 65_536,
            buckets: 16_384,
            stats: ConntrackStats {
                drop: 2_414,
                early_drop: 7,
                ..ConntrackStats::default()
            },
            entry_bytes: Some(256),
            host_memory_bytes: 8 << 30,
            per_cpu: Vec::new(),
            identity: None,
            memory: Default::default(),
        }
    }

    #[test]
    fn every_request_round_trips() {
        for request in [
            Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            },
            Request::Status {},
            Request::Snapshot {},
            Request::Entries {
                filter: EntryFilter {
                    network: Some("203.0.113.0/24".parse().expect("net")),
                    port: Some(53),
                    protocol: Some(Protocol::Udp),
                    tcp_state: None,
                    limit: 100,
                },
            },
            Request::SetSysctl(SetSysctlRequest {
                key: SysctlKey::TcpTimeoutEstablished,
                value: 180,
                persist: true,
                actor: text("alice"),
                requested_by: "198.51.100.5".parse().expect("addr"),
            }),
            Request::Block(BlockRequest {
                target: seed_target(),
                duration: BlockDuration::from_secs(3600).expect("duration"),
                reason: text("DNS reflection"),
                requested_by: "::ffff:198.51.100.5".parse().expect("addr"),
                actor: text("alice"),
            }),
            Request::Unblock(UnblockRequest {
                target: seed_target(),
                reason: text("over"),
                requested_by: "198.51.100.5".parse().expect("addr"),
                actor: text("alice"),
            }),
            Request::ListBlocks {},
            Request::DeleteEntries(DeleteEntriesRequest {
                target: "from 203.0.113.0/24".parse().expect("target"),
                reason: text("cleanup"),
                requested_by: "198.51.100.5".parse().expect("addr"),
                actor: text("alice"),
            }),
            Request::Journal {
                page: JournalPage { from: 0, limit: 50 },
            },
        ] {
            let body = encode(&request).expect("encodes");
            assert_eq!(decode::<Request>(&body).expect("decodes"), request);
        }
    }

    #[test]
    fn every_response_round_trips() {
        for response in [
            Response::Welcome {
                protocol_version: PROTOCOL_VERSION,
                helper_version: "0.1.0".into(),
                netns: Some("ctg-host".into()),
            },
            Response::Status {
                status: sample_status(),
                helper: HelperHealth {
                    blocks_active: 3,
                    journal_write_failures: 1,
                },
            },
            Response::Error {
                error: HelperError::PeerNotAllowed {
                    uid: 65_534,
                    gid: 65_534,
                },
            },
            Response::Blocked {
                block: ActiveBlock {
                    target: seed_target(),
                    reason: text("DNS reflection"),
                    actor: text("alice"),
                    requested_by: "198.51.100.5".parse().expect("addr"),
                    created_unix: 1_700_000_000,
                    expires_unix: 1_700_003_600,
                    journal_seq: 7,
                    packets_dropped: Some(1_234),
                },
                entries_deleted: 6_012,
                journal: crate::JournalRef {
                    seq: 7,
                    hash: "ab".repeat(32).try_into().expect("hash"),
                },
            },
            Response::Error {
                error: HelperError::PrefixTooWide {
                    network: "10.0.0.0/8".parse().expect("net"),
                    minimum_prefix: 16,
                },
            },
        ] {
            let body = encode(&response).expect("encodes");
            assert_eq!(decode::<Response>(&body).expect("decodes"), response);
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_json() {
        let body = encode(&Request::Hello {
            protocol_version: 1,
        })
        .expect("encodes");
        assert_eq!(&body[..], br#"{"request":"hello","protocol_version":1}"#);
        assert_eq!(
            &encode(&Request::Status {}).expect("encodes")[..],
            br#"{"request":"status"}"#
        );
    }

    /// Every mutation's JSON, byte for byte: the payload structs the variants carry serialise
    /// exactly as the struct variants they replaced did (protocol version 10's shape).
    #[test]
    fn mutation_requests_are_the_documented_json() {
        let by: std::net::IpAddr = "198.51.100.5".parse().expect("addr");
        let target = r#"{"network":"50.2.6.12/32","direction":"source","protocol":"udp","port":{"side":"source","port":53}}"#;
        for (request, json) in [
            (
                Request::SetSysctl(SetSysctlRequest {
                    key: SysctlKey::NfConntrackMax,
                    value: 262_144,
                    persist: false,
                    actor: text("alice"),
                    requested_by: by,
                }),
                r#"{"request":"set_sysctl","key":"net.netfilter.nf_conntrack_max","value":262144,"persist":false,"actor":"alice","requested_by":"198.51.100.5"}"#.to_owned(),
            ),
            (
                Request::Block(BlockRequest {
                    target: seed_target(),
                    duration: BlockDuration::from_secs(3600).expect("duration"),
                    reason: text("DNS reflection"),
                    requested_by: by,
                    actor: text("alice"),
                }),
                format!(
                    r#"{{"request":"block","target":{target},"duration":3600,"reason":"DNS reflection","requested_by":"198.51.100.5","actor":"alice"}}"#
                ),
            ),
            (
                Request::Unblock(UnblockRequest {
                    target: seed_target(),
                    reason: text("over"),
                    requested_by: by,
                    actor: text("alice"),
                }),
                format!(
                    r#"{{"request":"unblock","target":{target},"reason":"over","requested_by":"198.51.100.5","actor":"alice"}}"#
                ),
            ),
            (
                Request::DeleteEntries(DeleteEntriesRequest {
                    target: seed_target(),
                    reason: text("cleanup"),
                    requested_by: by,
                    actor: text("alice"),
                }),
                format!(
                    r#"{{"request":"delete_entries","target":{target},"reason":"cleanup","requested_by":"198.51.100.5","actor":"alice"}}"#
                ),
            ),
            (
                Request::StartTrace(StartTraceRequest {
                    filter: seed_target(),
                    seconds: 60,
                    reason: text("who floods"),
                    requested_by: by,
                    actor: text("alice"),
                }),
                format!(
                    r#"{{"request":"start_trace","filter":{target},"seconds":60,"reason":"who floods","requested_by":"198.51.100.5","actor":"alice"}}"#
                ),
            ),
            (
                Request::StopTrace(StopTraceRequest {
                    reason: text("enough"),
                    requested_by: by,
                    actor: text("alice"),
                }),
                r#"{"request":"stop_trace","reason":"enough","requested_by":"198.51.100.5","actor":"alice"}"#.to_owned(),
            ),
        ] {
            let body = encode(&request).expect("encodes");
            assert_eq!(std::str::from_utf8(&body).expect("utf-8"), json);
            assert_eq!(decode::<Request>(json.as_bytes()).expect("decodes"), request);
            // The payload refuses a field it does not know, as the struct variant did.
            let extra = format!("{},\"sudo\":true}}", &json[..json.len() - 1]);
            let error = decode::<Request>(extra.as_bytes()).expect_err("unknown field");
            assert!(error.to_string().contains("unknown field"), "{error}");
        }
    }

    #[test]
    fn ill_formed_values_are_refused_while_parsing() {
        for bad in [
            // host bits set
            r#"{"request":"delete_entries","target":{"network":"192.0.2.7/24","direction":"source","protocol":null,"port":null},"reason":"x","requested_by":"198.51.100.5","actor":"a"}"#,
            // zero duration
            r#"{"request":"block","target":{"network":"192.0.2.7/32","direction":"source","protocol":null,"port":null},"duration":0,"reason":"x","requested_by":"198.51.100.5","actor":"a"}"#,
            // a sysctl off the allowlist
            r#"{"request":"set_sysctl","key":"kernel.core_pattern","value":1,"persist":false,"actor":"a","requested_by":"198.51.100.5"}"#,
            // an empty actor
            r#"{"request":"unblock","target":{"network":"192.0.2.7/32","direction":"source","protocol":null,"port":null},"reason":"x","requested_by":"198.51.100.5","actor":""}"#,
            // an unknown field beside a field-less request
            r#"{"request":"list_blocks","all":true}"#,
        ] {
            assert!(decode::<Request>(bad.as_bytes()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn unknown_requests_are_refused() {
        let error = decode::<Request>(br#"{"request":"run_shell","command":"reboot"}"#)
            .expect_err("no such request");
        assert!(error.to_string().contains("unknown variant"), "{error}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = decode::<Request>(br#"{"request":"hello","protocol_version":1,"sudo":true}"#)
            .expect_err("unknown field");
        assert!(error.to_string().contains("unknown field"), "{error}");
        let error = decode::<Request>(br#"{"request":"status","all":true}"#)
            .expect_err("unknown field beside a field-less request");
        assert!(error.to_string().contains("unknown field"), "{error}");

        let helper = serde_json::to_value(HelperHealth::default()).expect("serialises");
        let mut status = serde_json::to_value(sample_status()).expect("serialises");
        status["extra"] = 1.into();
        let response =
            serde_json::json!({"response": "status", "status": status, "helper": helper});
        let error = serde_json::from_value::<Response>(response).expect_err("unknown nested field");
        assert!(error.to_string().contains("unknown field"), "{error}");

        let status = serde_json::to_value(sample_status()).expect("serialises");
        let mut helper = serde_json::to_value(HelperHealth::default()).expect("serialises");
        helper["uptime"] = 1.into();
        let response =
            serde_json::json!({"response": "status", "status": status, "helper": helper});
        let error = serde_json::from_value::<Response>(response).expect_err("unknown helper field");
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn a_status_answer_carries_the_helpers_state_and_one_without_it_is_refused() {
        let body = encode(&Response::Status {
            status: sample_status(),
            helper: HelperHealth {
                blocks_active: 1,
                journal_write_failures: 0,
            },
        })
        .expect("encodes");
        let text = std::str::from_utf8(&body).expect("utf-8");
        assert!(
            text.starts_with(r#"{"response":"status","status":{"count":65536,"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""helper":{"blocks_active":1,"journal_write_failures":0}}"#),
            "{text}"
        );
        // A version 2 helper's answer: the shape changed, hence the version bump.
        let status = serde_json::to_value(sample_status()).expect("serialises");
        let old = serde_json::json!({"response": "status", "status": status});
        let error = serde_json::from_value::<Response>(old).expect_err("no helper state");
        assert!(
            error.to_string().contains("missing field `helper`"),
            "{error}"
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        assert!(matches!(
            decode::<Request>(b"{\"request\":"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Request>(b"\xff\xfe"),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_bodies_are_refused_both_ways() {
        let huge = vec![b' '; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            decode::<Request>(&huge),
            Err(FrameError::TooLarge { .. })
        ));
        let error = Response::Error {
            error: HelperError::MalformedRequest {
                detail: "x".repeat(MAX_FRAME_BYTES),
            },
        };
        assert!(matches!(encode(&error), Err(FrameError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn frames_survive_the_codec() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut writer = FramedWrite::new(client, codec());
        let mut reader = FramedRead::new(server, codec());
        writer
            .send(encode(&Request::Status {}).expect("encodes"))
            .await
            .expect("sends");
        let frame = reader.next().await.expect("a frame").expect("valid frame");
        assert_eq!(
            decode::<Request>(&frame).expect("decodes"),
            Request::Status {}
        );
    }

    #[tokio::test]
    async fn the_codec_refuses_an_announced_oversized_frame_without_buffering_it() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FramedRead::new(server, codec());
        let announced = u32::try_from(MAX_FRAME_BYTES + 1).expect("fits");
        client
            .write_all(&announced.to_be_bytes())
            .await
            .expect("writes");
        let error = reader
            .next()
            .await
            .expect("an item")
            .expect_err("too large");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    }
}
