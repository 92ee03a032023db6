//! The shipped systemd unit's settings, tried on the real helper where they can be without
//! systemd as PID 1: the helper runs with exactly the unit's capability bounding set and still
//! does its whole job (the kernel log included), and it tells systemd it is ready only once its
//! socket accepts connections (`Type=notify`). `scripts/test.sh` scores the rest of the unit with
//! `systemd-analyze security --offline`.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::{
    os::unix::net::{UnixDatagram, UnixStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use ctguard_protocol::{BlockRequest, Request, Response, SetSysctlRequest};
use support::{Netns, have_root, session_at, wait_for};

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/ctguard-helper.service"
);

/// The unit's `KEY=` value (the last one, as systemd reads it).
fn unit_setting(key: &str) -> String {
    let text = std::fs::read_to_string(UNIT).unwrap();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit sets no {key}"))
        .trim()
        .to_owned()
}

/// A helper started in `netns` through `ip netns exec` (so it needs no CAP_SYS_ADMIN for setns,
/// as under the unit without `--netns`), with only the unit's capabilities, killed on drop.
struct ConfinedHelper {
    child: Child,
    socket: std::path::PathBuf,
}

impl Drop for ConfinedHelper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn confined_helper(netns: &Netns, dir: &Path, notify: Option<&Path>) -> ConfinedHelper {
    let capabilities: Vec<String> = unit_setting("CapabilityBoundingSet")
        .split_whitespace()
        .map(|cap| format!("+{}", cap.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding = format!("-all,{}", capabilities.join(","));
    let socket = dir.join("helper.sock");
    let state = dir.join("state");
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &netns.name, "setpriv"])
        .args(["--bounding-set", &bounding, "--inh-caps", "-all", "--"])
        .arg(env!("CARGO_BIN_EXE_ctguard-helper"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(&state)
        .args(["--group", "root"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    ConfinedHelper {
        child: command.spawn().unwrap(),
        socket,
    }
}

#[test]
fn the_helper_does_its_whole_job_with_exactly_the_units_capabilities() {
    if !have_root("the_helper_does_its_whole_job_with_exactly_the_units_capabilities") {
        return;
    }
    let netns = Netns::new("unit-caps");
    let dir = tempfile::tempdir().unwrap();
    let helper = confined_helper(&netns, dir.path(), None);
    wait_for(
        "the confined helper's socket",
        Duration::from_secs(10),
        || UnixStream::connect(&helper.socket).is_ok(),
    );
    let mut session = session_at(&helper.socket);

    // The kernel log: /dev/kmsg needs CAP_SYSLOG where dmesg_restrict=1 (Debian's default).
    let answer = session.ask(&Request::KernelLog {});
    assert!(matches!(answer, Response::KernelLog { .. }), "{answer:?}");
    let answer = session.ask(&Request::Status {});
    assert!(matches!(answer, Response::Status { .. }), "{answer:?}");
    let answer = session.ask(&Request::Snapshot {});
    assert!(matches!(answer, Response::Snapshot { .. }), "{answer:?}");
    // A block: nft and conntrack as children, the state and journal written.
    let answer = session.ask(&Request::Block(BlockRequest {
        target: "from 192.0.2.99".parse().unwrap(),
        duration: ctguard_protocol::BlockDuration::from_secs(60).unwrap(),
        reason: ctguard_protocol::ShortText::new("unit test").unwrap(),
        requested_by: "198.51.100.7".parse().unwrap(),
        actor: ctguard_protocol::ShortText::new("alice").unwrap(),
    }));
    assert!(matches!(answer, Response::Blocked { .. }), "{answer:?}");
    let set = netns.exec("nft", &["list", "set", "inet", "ctguard", "v4_saddr"]);
    assert!(set.contains("192.0.2.99"), "{set}");
    // A per-namespace sysctl, written in the namespace.
    let answer = session.ask(&Request::SetSysctl(SetSysctlRequest {
        key: ctguard_protocol::SysctlKey::UdpTimeout,
        value: 31,
        persist: false,
        actor: ctguard_protocol::ShortText::new("alice").unwrap(),
        requested_by: "198.51.100.7".parse().unwrap(),
    }));
    assert!(matches!(answer, Response::Sysctl { .. }), "{answer:?}");
    let value = netns.exec("sysctl", &["-n", "net.netfilter.nf_conntrack_udp_timeout"]);
    assert_eq!(value.trim(), "31");
}

#[test]
fn readiness_is_notified_only_once_the_socket_accepts() {
    if !have_root("readiness_is_notified_only_once_the_socket_accepts") {
        return;
    }
    assert_eq!(unit_setting("Type"), "notify");
    let netns = Netns::new("unit-notify");
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let helper = confined_helper(&netns, dir.path(), Some(&notify_path));
    let mut message = [0u8; 512];
    let length = notify.recv(&mut message).expect("READY=1 within 20 s");
    let message = String::from_utf8_lossy(&message[..length]).into_owned();
    assert!(message.starts_with("READY=1\n"), "{message:?}");
    // Ready means ready: the very next connection is served.
    let answer = session_at(&helper.socket).ask(&Request::Status {});
    assert!(matches!(answer, Response::Status { .. }), "{answer:?}");
}
