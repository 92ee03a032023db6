//! The helper against a real kernel table: a namespace of our own, real flows, and conntrack-tools
//! as the reference.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_protocol::{PROTOCOL_VERSION, Request, Response};
use support::{HelperProcess, Netns, have_root};

#[test]
fn the_count_equals_conntrack_tools_in_a_watched_namespace() {
    if !have_root("the_count_equals_conntrack_tools_in_a_watched_namespace") {
        return;
    }
    let netns = Netns::new("count");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let read_count = || {
        let Response::Status { status, .. } = helper.session().ask(&Request::Status {}) else {
            panic!("no status");
        };
        status.count
    };
    let before = read_count();

    netns.udp_flows(300, 20_000);

    // Entries do not expire for ten minutes here, so the three readings see the same table.
    let helper_count = read_count();
    let reference = netns.conntrack_count();
    assert_eq!(helper_count, reference, "helper vs conntrack -C");
    assert!(
        helper_count >= before + 300,
        "300 new flows: {before} -> {helper_count}"
    );
    assert_eq!(read_count(), helper_count, "the table was stable");
}

#[test]
fn the_helper_reports_its_namespace_and_the_kernel_statistics() {
    if !have_root("the_helper_reports_its_namespace_and_the_kernel_statistics") {
        return;
    }
    let netns = Netns::new("welcome");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let mut connection = helper.connect();
    let welcome = connection.ask(&Request::Hello {
        protocol_version: PROTOCOL_VERSION,
    });
    let Response::Welcome { netns: watched, .. } = welcome else {
        panic!("{welcome:?}");
    };
    assert_eq!(watched.as_deref(), Some(netns.name.as_str()));

    // SYN+FIN is not a valid TCP flag combination: conntrack counts each such packet as invalid.
    send_invalid_packets(&netns);
    let Response::Status { status, .. } = connection.ask(&Request::Status {}) else {
        panic!("no status");
    };
    let reference = netns.conntrack_stat_sum("invalid");
    assert!(reference >= 20, "conntrack -S saw the invalid packets");
    assert_eq!(status.stats.invalid, reference, "invalid, summed over CPUs");
    assert_eq!(status.stats.drop, netns.conntrack_stat_sum("drop"));
    assert_eq!(
        status.stats.early_drop,
        netns.conntrack_stat_sum("early_drop")
    );
    let slab = std::fs::read_to_string("/proc/slabinfo").unwrap();
    let listed = slab
        .lines()
        .find(|line| line.starts_with("nf_conntrack "))
        .and_then(|line| line.split_whitespace().nth(3))
        .map(|size| size.parse::<u64>().unwrap());
    assert_eq!(status.entry_bytes, listed, "entry size from /proc/slabinfo");
}

/// 20 SYN+FIN packets to a local port: not a valid TCP flag combination, so conntrack counts
/// each as invalid.
fn send_invalid_packets(netns: &Netns) {
    netns.exec(
        "timeout",
        &[
            "20",
            "hping3",
            "-q",
            "-c",
            "20",
            "-i",
            "u500",
            "-S",
            "-F",
            "-p",
            "80",
            "127.0.0.1",
        ],
    );
}

/// The helper's statistics, read with `--stats-source source`, against `conntrack -S` in the same
/// namespace, read just before and just after: nothing else sends there, so both references
/// agree (checked) and the helper's reading must equal them, every counter by its own name.
fn statistics_equal_conntrack_tools(source: &str) {
    let netns = Netns::new(&format!("stats-{source}"));
    let helper = HelperProcess::start(&[
        "--group",
        "root",
        "--netns",
        &netns.name,
        "--stats-source",
        source,
    ]);
    // Counters that are not zero, so equality means something: SYN+FIN is invalid for conntrack,
    // and an entry created over ctnetlink is what `insert` counts on 5.x/6.x.
    send_invalid_packets(&netns);
    netns.exec(
        "conntrack",
        &[
            "-I",
            "-p",
            "udp",
            "-s",
            "192.0.2.1",
            "-d",
            "192.0.2.2",
            "--sport",
            "1000",
            "--dport",
            "53",
            "-t",
            "600",
        ],
    );
    let before = netns.conntrack_stats();
    let Response::Status { status, .. } = helper.session().ask(&Request::Status {}) else {
        panic!("no status");
    };
    let after = netns.conntrack_stats();
    assert_eq!(before, after, "the namespace was quiet around the reading");
    assert!(
        before["invalid"] >= 20,
        "conntrack -S saw the invalid packets: {before:?}"
    );
    assert!(
        before["insert"] >= 1,
        "conntrack -S saw the insert: {before:?}"
    );

    let helper_stats = serde_json::to_value(status.stats).unwrap();
    let helper_stats = helper_stats.as_object().unwrap();
    for (name, reference) in &before {
        assert_eq!(
            helper_stats.get(name).and_then(serde_json::Value::as_u64),
            Some(*reference),
            "{name} over {source} vs conntrack -S"
        );
    }
    let reported: Vec<&String> = helper_stats.keys().collect();
    let printed: Vec<&String> = before.keys().collect();
    assert_eq!(
        reported, printed,
        "the same counters as conntrack -S, no more, no fewer"
    );
}

#[test]
fn the_statistics_over_ctnetlink_equal_conntrack_tools() {
    if !have_root("the_statistics_over_ctnetlink_equal_conntrack_tools") {
        return;
    }
    statistics_equal_conntrack_tools("netlink");
}

#[test]
fn the_statistics_from_procfs_equal_conntrack_tools() {
    if !have_root("the_statistics_from_procfs_equal_conntrack_tools") {
        return;
    }
    assert!(
        std::path::Path::new("/proc/net/stat/nf_conntrack").exists(),
        "this kernel has CONFIG_NF_CONNTRACK_PROCFS: the fallback can be tested here"
    );
    statistics_equal_conntrack_tools("procfs");
}

#[test]
fn an_unknown_statistics_source_stops_the_helper_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-helper"))
        .args([
            "--socket",
            "/tmp/ctgtest-never.sock",
            "--stats-source",
            "sysfs",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("netlink"),
        "the error lists the sources"
    );
}

#[test]
fn an_unknown_namespace_stops_the_helper_at_start() {
    if !have_root("an_unknown_namespace_stops_the_helper_at_start") {
        return;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-helper"))
        .args([
            "--socket",
            "/tmp/ctgtest-never.sock",
            "--netns",
            "ctgtest-no-such-ns",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ctgtest-no-such-ns"),
        "the error names the namespace"
    );
}

#[test]
fn the_kernel_log_request_counts_table_full_messages_of_the_last_minutes() {
    if !have_root("the_kernel_log_request_counts_table_full_messages_of_the_last_minutes") {
        return;
    }
    let helper = HelperProcess::start(&["--group", "root"]);
    let read = || {
        let response = helper.session().ask(&Request::KernelLog {});
        let Response::KernelLog { log } = response else {
            panic!("no kernel log summary: {response:?}");
        };
        log
    };
    let before = read();
    assert_eq!(before.window_secs, 600);
    // The helper's namespace, as the kernel names it in `table full in netns N` (6.17+).
    let inode = before.netns_inode.expect("the watched namespace's inode");

    // Root may write to the kernel log; the lines are tagged so nobody mistakes them for real
    // events: one naming the watched namespace, one in the plain form (the initial namespace's
    // on 6.17+, anyone's before), which is not the watched table's.
    {
        use std::io::Write;
        let mut kmsg = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .unwrap();
        for line in [
            format!(
                "ctguard-test: nf_conntrack: table full in netns {inode}, dropping packet (injected by ctguard's tests)\n"
            ),
            "ctguard-test: nf_conntrack: table full, dropping packet (injected by ctguard's tests)\n"
                .to_owned(),
        ] {
            kmsg.write_all(line.as_bytes()).unwrap();
        }
    }
    let mut after = before;
    // Other table-full messages may arrive meanwhile, and old ones leave the window: poll for ours.
    support::wait_for(
        "the injected messages to be counted",
        std::time::Duration::from_secs(5),
        || {
            after = read();
            after.table_full > before.table_full
                && after.other_tables + after.unattributed
                    > before.other_tables + before.unattributed
        },
    );
    assert!(after.table_full >= 1, "{before:?} -> {after:?}");
}

/// `conntrack -S` per CPU: each line's `cpu=N` and its counters by name.
fn conntrack_stats_per_cpu(
    netns: &Netns,
) -> std::collections::BTreeMap<u32, std::collections::BTreeMap<String, u64>> {
    let mut cpus = std::collections::BTreeMap::new();
    for line in netns.exec("conntrack", &["-S"]).lines() {
        let mut cpu = None;
        let mut counters = std::collections::BTreeMap::new();
        for field in line.split_whitespace() {
            let (name, value) = field.split_once('=').unwrap();
            let value = value.parse::<u64>().unwrap();
            if name == "cpu" {
                cpu = Some(u32::try_from(value).unwrap());
            } else {
                counters.insert(name.to_owned(), value);
            }
        }
        if let Some(cpu) = cpu {
            cpus.insert(cpu, counters);
        }
    }
    cpus
}

fn status_of(helper: &HelperProcess) -> ctguard_protocol::ConntrackStatus {
    let Response::Status { status, .. } = helper.session().ask(&Request::Status {}) else {
        panic!("no status");
    };
    status
}

/// Each CPU's counters, not only their sums, equal `conntrack -S`'s line for that CPU (the
/// arithmetic that survives a wrap needs them), and the identity names the watched namespace
/// (the inode `ip netns` bind-mounted) and this boot.
#[test]
fn each_cpus_counters_and_the_table_identity_equal_the_kernels() {
    if !have_root("each_cpus_counters_and_the_table_identity_equal_the_kernels") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    for source in ["netlink", "procfs"] {
        let netns = Netns::new(&format!("percpu-{source}"));
        let helper = HelperProcess::start(&[
            "--group",
            "root",
            "--netns",
            &netns.name,
            "--stats-source",
            source,
        ]);
        send_invalid_packets(&netns);
        let before = conntrack_stats_per_cpu(&netns);
        let status = status_of(&helper);
        let after = conntrack_stats_per_cpu(&netns);
        assert_eq!(before, after, "the namespace was quiet around the reading");
        assert_eq!(
            status.per_cpu.len(),
            before.len(),
            "{source}: one entry per CPU conntrack -S prints"
        );
        for cpu in &status.per_cpu {
            let reference = &before[&cpu.cpu];
            let reported = serde_json::to_value(cpu.stats).unwrap();
            for (name, value) in reference {
                assert_eq!(
                    reported.get(name).and_then(serde_json::Value::as_u64),
                    Some(*value),
                    "{source}: cpu {} {name}",
                    cpu.cpu
                );
            }
        }
        let identity = status.identity.expect("the identity is read");
        let inode = std::fs::metadata(format!("/run/netns/{}", netns.name))
            .unwrap()
            .ino();
        assert_eq!(identity.netns_inode, inode, "the watched namespace's inode");
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(identity.boot_id, boot_id.trim());
    }
}

/// The `nf_conntrack` line of /proc/slabinfo: active objects, objects, object size.
fn slab_line() -> (u64, u64, u64) {
    let slab = std::fs::read_to_string("/proc/slabinfo").unwrap();
    let line = slab
        .lines()
        .find(|line| line.starts_with("nf_conntrack "))
        .expect("an nf_conntrack cache");
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|field| field.parse().unwrap())
        .collect();
    (fields[0], fields[1], fields[2])
}

/// "In use" is the slab's, read in the same window as /proc/slabinfo (retried while other
/// namespaces change it); a plain table's entry is its slab object alone.
#[test]
fn memory_in_use_and_the_entry_size_equal_slabinfo() {
    if !have_root("memory_in_use_and_the_entry_size_equal_slabinfo") {
        return;
    }
    let netns = Netns::new("slab");
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    netns.udp_flows(200, 21_000);
    let mut compared = false;
    for _ in 0..20 {
        let before = slab_line();
        let status = status_of(&helper);
        if slab_line() != before {
            continue;
        }
        let slab = status.memory.slab.expect("slabinfo read");
        assert_eq!(
            (slab.active_objects, slab.total_objects, slab.object_bytes),
            before,
            "the helper's slab figures are /proc/slabinfo's"
        );
        assert!(
            slab.active_objects >= status.count,
            "every entry of this namespace is in the host's slab"
        );
        assert_eq!(status.memory.object_bytes, Some(before.2));
        assert_eq!(status.memory.extensions, vec![], "a plain namespace");
        assert_eq!(status.entry_bytes, Some(before.2), "slab object alone");
        assert_eq!(
            status.slab_in_use_bytes(),
            Some(before.0 * before.2 + status.buckets * 8)
        );
        compared = true;
        break;
    }
    assert!(compared, "/proc/slabinfo never held still for one reading");
}

/// A `conntrack -E` listener in the namespace gives every new entry an event cache
/// (`nf_conntrack_events = 2`): the entry's cost gains the 128 B extension area, and drops it
/// again when the listener is gone. NAT chains do the same.
#[test]
fn an_event_listener_or_nat_adds_the_extension_area() {
    if !have_root("an_event_listener_or_nat_adds_the_extension_area") {
        return;
    }
    use ctguard_protocol::status::EntryExtension;
    let netns = Netns::new("ext");
    assert_eq!(
        netns
            .exec("sysctl", &["-n", "net.netfilter.nf_conntrack_events"])
            .trim(),
        "2",
        "the kernel's default: an event cache only with a listener"
    );
    let helper = HelperProcess::start(&["--group", "root", "--netns", &netns.name]);
    let plain = status_of(&helper);
    let object = plain.memory.object_bytes.expect("slab read");
    assert_eq!(plain.entry_bytes, Some(object));

    let mut listener = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name, "conntrack", "-E"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut listening = plain.clone();
    support::wait_for(
        "the listener to be seen",
        std::time::Duration::from_secs(5),
        || {
            listening = status_of(&helper);
            listening
                .memory
                .extensions
                .contains(&EntryExtension::EventListener)
        },
    );
    assert_eq!(listening.entry_bytes, Some(object + 128));
    assert_eq!(listening.memory.extension_bytes, 128);
    listener.kill().unwrap();
    listener.wait().unwrap();
    support::wait_for(
        "the listener to be gone",
        std::time::Duration::from_secs(5),
        || status_of(&helper).entry_bytes == Some(object),
    );

    // NAT is looked at once a minute: a helper started after the chain sees it at once.
    let natted = Netns::new("ext-nat");
    natted.exec(
        "nft",
        &["add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }"],
    );
    let helper = HelperProcess::start(&["--group", "root", "--netns", &natted.name]);
    let status = status_of(&helper);
    assert_eq!(status.memory.extensions, vec![EntryExtension::Nat]);
    assert_eq!(status.entry_bytes, Some(object + 128));

    // So is a helper the ruleset assigns (an FTP helper object and the rule that sets it).
    let helped = Netns::new("ext-helper");
    helped.exec(
        "nft",
        &[
            "add table inet f; add ct helper inet f ftp-standard { type \"ftp\" protocol tcp; }; \
           add chain inet f pre { type filter hook prerouting priority filter; }; \
           add rule inet f pre tcp dport 21 ct helper set \"ftp-standard\"",
        ],
    );
    let helper = HelperProcess::start(&["--group", "root", "--netns", &helped.name]);
    let status = status_of(&helper);
    assert_eq!(status.memory.extensions, vec![EntryExtension::RuleHelpers]);
    assert_eq!(status.entry_bytes, Some(object + 128));
}
