//! SetSysctl against the kernel: per-namespace keys land in the watched namespace only, global
//! keys in the initial one (saved and restored by the test), bounds hold, persistence writes the
//! configured file.

#![allow(clippy::unwrap_used)]

mod support;

use ctguard_protocol::{HelperError, Request, Response, ShortText, SysctlKey};
use support::{HelperProcess, Netns, have_root};

fn set(key: SysctlKey, value: u64, persist: bool) -> Request {
    Request::SetSysctl {
        key,
        value,
        persist,
        actor: ShortText::new("alice").unwrap(),
        requested_by: "192.0.2.200".parse().unwrap(),
    }
}

fn initial(key: SysctlKey) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/{}", key.proc_path()))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Puts a global value back however the test ends.
struct Restore(SysctlKey, u64);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(
            format!("/proc/sys/{}", self.0.proc_path()),
            self.1.to_string(),
        );
    }
}

#[test]
fn a_per_namespace_timeout_is_written_in_the_watched_namespace_read_back_and_persisted() {
    if !have_root(
        "a_per_namespace_timeout_is_written_in_the_watched_namespace_read_back_and_persisted",
    ) {
        return;
    }
    let netns = Netns::new("sysctl");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    // The persisted file lives in the helper's own directory (the install links it into
    // /etc/sysctl.d): the helper never writes in /etc.
    let conf = helper.state_dir.join("90-ctguard.conf");
    let key = SysctlKey::TcpTimeoutEstablished;
    let before_here = initial(key);
    let target = if before_here == 7_200 { 7_201 } else { 7_200 };
    let response = helper.session().ask(&set(key, target, true));
    let Response::Sysctl {
        value, persisted, ..
    } = response
    else {
        panic!("{response:?}");
    };
    assert_eq!(value, target);
    assert!(persisted);
    let there = netns.exec("sysctl", &["-n", key.name()]);
    assert_eq!(
        there.trim(),
        target.to_string(),
        "written in the watched namespace"
    );
    assert_eq!(initial(key), before_here, "and nowhere else");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains(&format!("{} = {target}\n", key.name())),
        "{text}"
    );

    let response = helper.session().ask(&set(key, 10, false));
    assert!(
        matches!(
            response,
            Response::Error {
                error: HelperError::SysctlOutOfBounds { min: 60, .. }
            }
        ),
        "{response:?}"
    );
}

#[test]
fn a_global_limit_is_written_in_the_initial_namespace() {
    if !have_root("a_global_limit_is_written_in_the_initial_namespace") {
        return;
    }
    let key = SysctlKey::NfConntrackMax;
    let original = initial(key);
    let _restore = Restore(key, original);
    let wanted = if original > 2_048 {
        original - 1
    } else {
        original + 1
    };
    let netns = Netns::new("global");
    // Inside a child namespace this file is read-only: only the initial namespace can take it.
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let response = helper.session().ask(&set(key, wanted, false));
    let Response::Sysctl {
        previous, value, ..
    } = response
    else {
        panic!("{response:?}");
    };
    assert_eq!((previous, value), (original, wanted));
    assert_eq!(initial(key), wanted, "the host's limit changed");
}

#[test]
fn every_key_is_read_where_it_lives_with_its_persisted_value() {
    if !have_root("every_key_is_read_where_it_lives_with_its_persisted_value") {
        return;
    }
    let netns = Netns::new("readall");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    // A per-namespace value that differs from the initial namespace's, set behind the helper's back.
    let udp = SysctlKey::UdpTimeout;
    let there = if initial(udp) == 47 { 48 } else { 47 };
    netns.exec("sysctl", &["-q", "-w", &format!("{}={there}", udp.name())]);
    let established = SysctlKey::TcpTimeoutEstablished;
    let persisted_value = if initial(established) == 7_300 {
        7_301
    } else {
        7_300
    };
    let response = helper
        .session()
        .ask(&set(established, persisted_value, true));
    assert!(matches!(response, Response::Sysctl { .. }), "{response:?}");

    let response = helper.session().ask(&Request::ReadSysctls {});
    let Response::Sysctls { readings } = response else {
        panic!("{response:?}");
    };
    let keys: Vec<SysctlKey> = readings.iter().map(|r| r.key).collect();
    assert_eq!(keys, SysctlKey::ALL, "one reading per key, in order");
    let reading = |key: SysctlKey| *readings.iter().find(|r| r.key == key).unwrap();
    assert_eq!(
        reading(udp).value,
        Some(there),
        "per-namespace keys come from the watched namespace"
    );
    assert_eq!(reading(udp).persisted, None);
    assert_eq!(reading(established).value, Some(persisted_value));
    assert_eq!(reading(established).persisted, Some(persisted_value));
    for key in [
        SysctlKey::NfConntrackMax,
        SysctlKey::NeighGcThresh3,
        SysctlKey::NeighGcStaleTime,
    ] {
        assert_eq!(
            reading(key).value,
            Some(initial(key)),
            "{key} is global: read in the initial namespace (the child has no neigh/default)"
        );
    }
}
