//! The helper's socket as a client meets it: who may connect, and what it does with bad input.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::{
    io::Write,
    os::unix::{fs::MetadataExt, process::CommandExt},
    process::{Command, Stdio},
};

use ctguard_protocol::{
    HelperError, MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response, frame,
};
use support::{HelperProcess, have_root};

const NOBODY: u32 = 65_534;

#[test]
fn the_socket_is_0660_and_owned_by_root_and_the_configured_group() {
    if !have_root("the_socket_is_0660_and_owned_by_root_and_the_configured_group") {
        return;
    }
    let helper = HelperProcess::start(&["--group", "nogroup"]);
    let metadata = std::fs::metadata(&helper.socket).unwrap();
    assert_eq!(support::socket_mode(&helper.socket), 0o660);
    assert_eq!(metadata.uid(), 0);
    assert_eq!(metadata.gid(), NOBODY, "group nogroup");
}

#[test]
fn a_peer_with_a_uid_not_allowed_is_refused() {
    if !have_root("a_peer_with_a_uid_not_allowed_is_refused") {
        return;
    }
    // nobody is in group nogroup, so the socket's mode lets it connect: only SO_PEERCRED stops it.
    let helper = HelperProcess::start(&["--group", "nogroup"]);
    // The client sends nothing: the refusal comes before any request is read, and a client
    // still writing when the helper hangs up would race with it.
    let client = Command::new("socat")
        .args([
            "-t",
            "5",
            "-",
            &format!("UNIX-CONNECT:{}", helper.socket.display()),
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat is installed");
    let output = client.wait_with_output().unwrap();
    assert!(
        output.stdout.len() > 4,
        "nobody got no answer: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Response = frame::decode(&output.stdout[4..]).unwrap();
    assert_eq!(
        response,
        Response::Error {
            error: HelperError::PeerNotAllowed {
                uid: NOBODY,
                gid: NOBODY
            }
        }
    );

    // The same helper still serves an allowed peer.
    let status = helper.session().ask(&Request::Status {});
    assert!(matches!(status, Response::Status { .. }), "{status:?}");
}

#[test]
fn an_allowed_peer_gets_the_status() {
    if !have_root("an_allowed_peer_gets_the_status") {
        return;
    }
    let helper = HelperProcess::start(&["--group", "root"]);
    let Response::Status { status, .. } = helper.session().ask(&Request::Status {}) else {
        panic!("no status");
    };
    assert!(status.max > 0);
    assert!(status.buckets > 0);
    assert!(status.host_memory_bytes > 0);
}

#[test]
fn requests_before_the_handshake_and_other_versions_are_refused() {
    if !have_root("requests_before_the_handshake_and_other_versions_are_refused") {
        return;
    }
    let helper = HelperProcess::start(&["--group", "root"]);

    let mut early = helper.connect();
    assert_eq!(
        early.ask(&Request::Status {}),
        Response::Error {
            error: HelperError::HandshakeRequired
        }
    );
    assert_eq!(early.receive(), None, "closed after a handshake error");

    let mut future = helper.connect();
    assert_eq!(
        future.ask(&Request::Hello {
            protocol_version: 99
        }),
        Response::Error {
            error: HelperError::VersionMismatch {
                helper: PROTOCOL_VERSION,
                client: 99
            }
        }
    );
    assert_eq!(future.receive(), None);
}

#[test]
fn malformed_and_unknown_requests_are_refused_and_the_connection_goes_on() {
    if !have_root("malformed_and_unknown_requests_are_refused_and_the_connection_goes_on") {
        return;
    }
    let helper = HelperProcess::start(&["--group", "root"]);
    let mut connection = helper.session();
    for bad in [
        &br#"{"request":"run_shell","command":"reboot"}"#[..],
        br#"{"request":"status","extra":1}"#,
        // A well-formed request with an ill-formed value: host bits set, a zero duration.
        br#"{"request":"block","target":{"network":"192.0.2.7/24","direction":"source","protocol":null,"port":null},"duration":60,"reason":"x","requested_by":"192.0.2.200","actor":"a"}"#,
        br#"{"request":"block","target":{"network":"192.0.2.7/32","direction":"source","protocol":null,"port":null},"duration":0,"reason":"x","requested_by":"192.0.2.200","actor":"a"}"#,
        br#"{"request":"set_sysctl","key":"kernel.core_pattern","value":1,"persist":false,"actor":"a","requested_by":"192.0.2.200"}"#,
        b"not json",
        b"",
    ] {
        connection.send_raw(bad);
        let response = connection.receive().expect("an answer");
        assert!(
            matches!(
                response,
                Response::Error {
                    error: HelperError::MalformedRequest { .. }
                }
            ),
            "{}: {response:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(matches!(
        connection.ask(&Request::Status {}),
        Response::Status { .. }
    ));
}

#[test]
fn an_oversized_frame_closes_that_connection_only() {
    if !have_root("an_oversized_frame_closes_that_connection_only") {
        return;
    }
    let mut helper = HelperProcess::start(&["--group", "root"]);
    let mut connection = helper.session();
    // Requests have their own limit, far below an answer's 1 MiB.
    let announced = u32::try_from(MAX_REQUEST_BYTES + 1).unwrap();
    connection
        .stream
        .write_all(&announced.to_be_bytes())
        .unwrap();
    assert_eq!(
        connection.receive(),
        Some(Response::Error {
            error: HelperError::FrameTooLarge {
                max: MAX_REQUEST_BYTES
            }
        })
    );
    assert_eq!(connection.receive(), None, "closed");
    assert!(helper.is_running());
    assert!(matches!(
        helper.session().ask(&Request::Status {}),
        Response::Status { .. }
    ));
}
