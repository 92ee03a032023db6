//! SetSysctl against the kernel: per-namespace keys land in the watched namespace only, global
//! keys in the initial one (saved and restored by the test), bounds hold, persistence writes the
//! configured file; a watched namespace's keys stay out of the boot's file and come back when the
//! helper restarts; the kernel's bucket rounding is success; refusals leave /proc/sys as it was.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_protocol::{
    ConntrackModule, HelperError, JournalEvent, JournalPage, JournalRecord, Request, Response,
    SetSysctlRequest, ShortText, SysctlKey,
};
use support::{HelperProcess, Netns, have_root};

fn set(key: SysctlKey, value: u64, persist: bool) -> Request {
    Request::SetSysctl(SetSysctlRequest {
        key,
        value,
        persist,
        actor: ShortText::new("alice").unwrap(),
        requested_by: "192.0.2.200".parse().unwrap(),
    })
}

fn initial(key: SysctlKey) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/{}", key.proc_path()))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Held by every test that writes or compares a global key: tests of one binary run in
/// parallel, and two of them saving and restoring the same host value would interleave, as would
/// any other test's namespace reading what the host's table obeys.
fn global_keys() -> support::HostAlone {
    support::host_alone()
}

/// Puts a global value back however the test ends.
struct Restore(SysctlKey, u64);

impl Restore {
    fn save(key: SysctlKey) -> Self {
        Self(key, initial(key))
    }
}

/// How /sys/module shows this kernel's nf_conntrack (read apart from the helper's code).
fn this_kernels_conntrack() -> ConntrackModule {
    let dir = std::path::Path::new("/sys/module/nf_conntrack");
    if dir.join("initstate").exists() {
        ConntrackModule::Loadable
    } else if dir.join("parameters").is_dir() {
        ConntrackModule::BuiltIn
    } else {
        ConntrackModule::Unknown
    }
}

fn journal_of(helper: &HelperProcess) -> Vec<JournalRecord> {
    let response = helper.session().ask(&Request::Journal {
        page: JournalPage {
            from: 0,
            limit: 100,
        },
    });
    let Response::Journal { records, .. } = response else {
        panic!("{response:?}");
    };
    records
}

/// The detail of the outcome of intent `seq`, if it succeeded.
fn ok_outcome(records: &[JournalRecord], seq: u64) -> Option<String> {
    records.iter().find_map(|record| match &record.event {
        JournalEvent::Outcome {
            intent_seq,
            ok: true,
            detail,
        } if *intent_seq == seq => Some(detail.clone()),
        _ => None,
    })
}

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
    // The helper watches another namespace: its per-namespace keys are kept in the helper's own
    // netns.conf, never in 90-ctguard.conf, which the boot applies to the host's namespace.
    let boot_conf = helper.state_dir.join("90-ctguard.conf");
    let conf = helper.state_dir.join("netns.conf");
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
    let boot = std::fs::read_to_string(&boot_conf).unwrap_or_default();
    assert!(!boot.contains(key.name()), "{boot}");

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
    let _global = global_keys();
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
    let _global = global_keys();
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
    let Response::Sysctls { readings, module } = response else {
        panic!("{response:?}");
    };
    assert_eq!(module, this_kernels_conntrack(), "as /sys/module shows it");
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

#[test]
fn a_bucket_count_the_kernel_rounds_up_is_a_success_answered_journaled_and_persisted_rounded() {
    if !have_root(
        "a_bucket_count_the_kernel_rounds_up_is_a_success_answered_journaled_and_persisted_rounded",
    ) {
        return;
    }
    let _global = global_keys();
    let key = SysctlKey::NfConntrackBuckets;
    let restore = Restore::save(key);
    let original = restore.1;
    // One more than a multiple of 512: `nf_ct_alloc_hashtable` rounds it up by 511.
    let (asked, kept) = if original < 4_194_304 {
        (original + 1, original.div_ceil(512) * 512 + 512)
    } else {
        (original - 511, original)
    };
    let netns = Netns::new("buckets");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let response = helper.session().ask(&set(key, asked, true));
    let Response::Sysctl {
        previous,
        value,
        persisted,
        journal,
        ..
    } = response
    else {
        panic!("a rounded resize is a success: {response:?}");
    };
    assert_eq!((previous, value, persisted), (original, kept, true));
    assert_eq!(initial(key), kept, "the kernel holds the rounded size");
    let detail = ok_outcome(&journal_of(&helper), journal.seq).expect("journaled as done");
    assert!(
        detail.contains(&format!("-> {kept}")) && detail.contains("rounded"),
        "{detail}"
    );
    let boot = std::fs::read_to_string(helper.state_dir.join("90-ctguard.conf")).unwrap();
    assert!(
        boot.contains(&format!("{} = {kept}\n", key.name())),
        "{boot}"
    );
    // A module is sized at load by modprobe.d; a built-in nf_conntrack has no module to give an
    // option to, so nothing is written there (sysctl.d resizes it at boot).
    let modprobe = std::fs::read_to_string(helper.state_dir.join("ctguard-conntrack.conf"));
    match this_kernels_conntrack() {
        ConntrackModule::BuiltIn => assert!(modprobe.is_err(), "{modprobe:?}"),
        _ => {
            let modprobe = modprobe.unwrap();
            assert!(
                modprobe.contains(&format!("hashsize={kept}\n")),
                "{modprobe}"
            );
        }
    }
}

#[test]
fn a_watched_namespace_gets_its_persisted_keys_back_when_the_helper_restarts() {
    if !have_root("a_watched_namespace_gets_its_persisted_keys_back_when_the_helper_restarts") {
        return;
    }
    let netns = Netns::new("reapply");
    let dir = tempfile::tempdir().unwrap();
    let args = ["--group", "root", "--netns", netns.name.as_str()];
    let key = SysctlKey::TcpTimeoutCloseWait;
    let host_before = initial(key);
    let there = || {
        netns
            .exec("sysctl", &["-n", key.name()])
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    {
        let helper = HelperProcess::start_in(dir.path(), &args);
        // kube-proxy's close_wait: within bounds, so putting it back never fails.
        let response = helper.session().ask(&set(key, 3_600, true));
        assert!(
            matches!(response, Response::Sysctl { value: 3_600, .. }),
            "{response:?}"
        );
    }
    let boot =
        std::fs::read_to_string(dir.path().join("state/90-ctguard.conf")).unwrap_or_default();
    assert!(
        !boot.contains(key.name()),
        "never applied to the host at boot: {boot}"
    );
    // The namespace loses the value (as a reboot or a recreated namespace would).
    netns.exec("sysctl", &["-qw", &format!("{}=60", key.name())]);
    assert_eq!(there(), 60);

    let helper = HelperProcess::start_in(dir.path(), &args);
    assert_eq!(
        there(),
        3_600,
        "re-applied in the watched namespace at start"
    );
    assert_eq!(initial(key), host_before, "and nowhere else");
    let records = journal_of(&helper);
    let reapplied = records.iter().find_map(|record| match &record.event {
        JournalEvent::Intent {
            action:
                ctguard_protocol::JournalAction::SetSysctl {
                    key: k,
                    value: 3_600,
                    ..
                },
            actor: None,
            ..
        } if *k == key => Some(record.seq),
        _ => None,
    });
    let seq = reapplied.expect("the helper's own write is journaled");
    let detail = ok_outcome(&records, seq).expect("and succeeded");
    assert!(detail.contains("re-applied in namespace"), "{detail}");
    let response = helper.session().ask(&Request::ReadSysctls {});
    let Response::Sysctls { readings, .. } = response else {
        panic!("{response:?}");
    };
    let reading = readings.iter().find(|r| r.key == key).unwrap();
    assert_eq!(
        (reading.value, reading.persisted),
        (Some(3_600), Some(3_600))
    );
}

#[test]
fn neighbour_thresholds_out_of_order_or_under_their_floors_are_refused_and_not_written() {
    if !have_root(
        "neighbour_thresholds_out_of_order_or_under_their_floors_are_refused_and_not_written",
    ) {
        return;
    }
    let _global = global_keys();
    let [one, two, three] = [
        SysctlKey::NeighGcThresh1,
        SysctlKey::NeighGcThresh2,
        SysctlKey::NeighGcThresh3,
    ];
    let _restore = [Restore::save(one), Restore::save(two), Restore::save(three)];
    let netns = Netns::new("neigh");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    // Room above the floors to break the order both ways: raised (harmless), cap first.
    for (key, value) in [(three, 8_192), (two, 4_096), (one, 2_048)] {
        let response = helper.session().ask(&set(key, value, false));
        assert!(
            matches!(response, Response::Sysctl { .. }),
            "{key}: {response:?}"
        );
    }
    let live = || [initial(one), initial(two), initial(three)];
    assert_eq!(live(), [2_048, 4_096, 8_192]);
    for (key, value, other, other_value) in [
        (one, 4_097, two, 4_096),
        (two, 8_193, three, 8_192),
        (two, 2_047, one, 2_048),
        (three, 4_095, two, 4_096),
    ] {
        let response = helper.session().ask(&set(key, value, false));
        assert!(
            matches!(
                &response,
                Response::Error { error: HelperError::NeighThresholdOrder { other: o, other_value: v, .. } }
                    if *o == other && *v == other_value
            ),
            "{key} = {value}: {response:?}"
        );
    }
    for (key, value, min) in [(three, 1_023, 1_024), (two, 511, 512)] {
        let response = helper.session().ask(&set(key, value, false));
        assert!(
            matches!(
                response,
                Response::Error { error: HelperError::SysctlOutOfBounds { min: m, .. } } if m == min
            ),
            "{key} = {value}: {response:?}"
        );
    }
    assert_eq!(
        live(),
        [2_048, 4_096, 8_192],
        "refusals leave the host's thresholds as they were"
    );
}

#[test]
fn a_limit_whose_full_table_would_pass_a_quarter_of_ram_is_refused_and_not_written() {
    if !have_root("a_limit_whose_full_table_would_pass_a_quarter_of_ram_is_refused_and_not_written")
    {
        return;
    }
    let _global = global_keys();
    let key = SysctlKey::NfConntrackMax;
    let restore = Restore::save(key);
    let memory = std::fs::read_to_string("/proc/meminfo").unwrap();
    let memory: u64 = memory
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .unwrap()
        * 1_024;
    let object = std::fs::read_to_string("/proc/slabinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next()? == "nf_conntrack").then(|| fields.nth(2)?.parse::<u64>().ok())?
            })
        })
        .unwrap_or(256);
    let entry = object + 128;
    let buckets = initial(SysctlKey::NfConntrackBuckets);
    let fits = (memory / 100 * 25 - buckets * 8) / entry;
    let too_many = fits + 1;
    let (_, bound) = key.bounds();
    if too_many > bound || too_many <= restore.1 {
        eprintln!(
            "skipped: a quarter of this host's RAM holds more than the bound, or the limit is already past it"
        );
        return;
    }
    let netns = Netns::new("ram");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let response = helper.session().ask(&set(key, too_many, false));
    let Response::Error {
        error:
            HelperError::ConntrackTableTooLarge {
                entry_bytes,
                share_percent,
                memory_bytes,
                table_bytes,
                ..
            },
    } = response
    else {
        panic!("{response:?}");
    };
    assert_eq!(
        (entry_bytes, share_percent, memory_bytes),
        (entry, 25, memory)
    );
    assert_eq!(table_bytes, too_many * entry + buckets * 8);
    assert_eq!(initial(key), restore.1, "the host's limit is untouched");
    // Putting back the value read never fails: the same limit is accepted.
    let response = helper.session().ask(&set(key, restore.1, false));
    assert!(matches!(response, Response::Sysctl { .. }), "{response:?}");
}
