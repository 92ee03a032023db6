//! The snapshot benchmark (ignored by default; `scripts/bench.sh` runs it in release mode): fills
//! a sandbox router's table to CTGUARD_BENCH_ENTRIES (default 262,144) and compares, in one run,
//! the helper's Snapshot with the conntrack-tools pipeline
//! (`conntrack -L | awk | sort | uniq -c | sort -rn | head`) and the /proc/net/nf_conntrack text
//! pipeline, reporting ratios and the helper's peak RSS as a Markdown table.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ctguard_protocol::{Request, Response};
use support::{HelperProcess, have_root, topology::Topology};

/// Puts nf_conntrack_max back however the benchmark ends.
struct RestoreMax(String);

impl Drop for RestoreMax {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/net/netfilter/nf_conntrack_max", &self.0);
    }
}

/// Runs `stages` as a pipeline (each one's stdout into the next one's stdin), no shell; returns
/// the wall time and the last stage's output.
fn pipeline(stages: &[Vec<&str>]) -> (Duration, String) {
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let stdin = match children.last_mut() {
            Some(previous) => Stdio::from(previous.stdout.take().unwrap()),
            None => Stdio::null(),
        };
        let child = Command::new(stage[0])
            .args(&stage[1..])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(if i == 0 {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap();
        children.push(child);
    }
    let last = children.pop().unwrap();
    let output = last.wait_with_output().unwrap();
    for mut child in children {
        child.wait().unwrap();
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// What a user would type for the top sources: `SOURCE | awk PROGRAM | sort | uniq -c | sort -rn
/// | head -20`, with SOURCE run in namespace `ns`.
fn top_sources(ns: &str, source: &[&str], awk_program: &str) -> (Duration, String) {
    let mut first = vec!["ip", "netns", "exec", ns];
    first.extend_from_slice(source);
    pipeline(&[
        first,
        vec!["awk", awk_program],
        vec!["sort"],
        vec!["uniq", "-c"],
        vec!["sort", "-rn"],
        vec!["head", "-20"],
    ])
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The helper's user and system CPU time since it started (mostly the walk), from
/// /proc/PID/stat, assuming the usual 100 ticks per second.
fn cpu_split(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    let ticks = |i: usize| fields[i].parse::<f64>().unwrap() / 100.0;
    format!("{:.2} s / {:.2} s", ticks(11), ticks(12))
}

#[test]
#[ignore = "a benchmark: scripts/bench.sh runs it"]
fn snapshot_benchmark() {
    if !have_root("snapshot_benchmark") {
        return;
    }
    let entries: u64 = std::env::var("CTGUARD_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(262_144);
    let max_path = "/proc/sys/net/netfilter/nf_conntrack_max";
    let original_max = std::fs::read_to_string(max_path).unwrap().trim().to_owned();
    let _restore = RestoreMax(original_max.clone());
    let wanted_max = entries + entries / 8;
    if original_max.parse::<u64>().unwrap() < wanted_max {
        std::fs::write(max_path, wanted_max.to_string()).unwrap();
    }

    let net = Topology::new("bench");
    // One source address per 60,000 entries (source ports are the distinct part).
    let per_source = 60_000u64;
    let sources: Vec<String> = (0..entries.div_ceil(per_source))
        .map(|i| format!("203.0.113.{}", 100 + i))
        .collect();
    for source in &sources {
        net.inet.exec(
            "ip",
            &["addr", "add", &format!("{source}/24"), "dev", "eth0"],
        );
    }
    let fill_started = Instant::now();
    let mut floods = Vec::new();
    let mut left = entries;
    for source in &sources {
        let count = left.min(per_source);
        left -= count;
        floods.push(
            Command::new("ip")
                .args(["netns", "exec", &net.inet.name, "timeout", "120", "hping3"])
                .args(["--udp", "-q", "-I", "eth0", "-a", source, "-s", "1024"])
                .args([
                    "-p",
                    "9999",
                    "-i",
                    "u1",
                    "-c",
                    &count.to_string(),
                    "198.51.100.10",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut flood in floods {
        flood.wait().unwrap();
    }
    let count = || -> u64 {
        net.router
            .exec("conntrack", &["-C"])
            .trim()
            .parse()
            .unwrap()
    };
    let filled = count();
    let fill_time = fill_started.elapsed();
    assert!(
        filled >= entries * 95 / 100,
        "only {filled} of {entries} entries (packets lost?)"
    );

    // Rounds interleave the three contenders so that a noisy moment hurts them alike; the
    // table reports each one's median. Every round starts a fresh helper, because a second
    // Snapshot within the walk-cost interval is (by design) served from the shared walk.
    let rounds: usize = std::env::var("CTGUARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let ns = net.router.name.as_str();
    let mut helper_times = Vec::new();
    let mut tools_times = Vec::new();
    let mut proc_times = Vec::new();
    let mut walk_ms = Vec::new();
    let (mut rss_idle, mut rss_peak, mut cpu) = (0, 0, String::new());
    for _ in 0..rounds {
        let helper = HelperProcess::start(&["--group", "root", "--netns", ns]);
        rss_idle = peak_rss_kib(helper.pid());
        let started = Instant::now();
        let Response::Snapshot { snapshot } = helper.session().ask(&Request::Snapshot {}) else {
            panic!("no snapshot");
        };
        helper_times.push(started.elapsed());
        walk_ms.push(snapshot.walk_ms);
        rss_peak = rss_peak.max(peak_rss_kib(helper.pid()));
        cpu = cpu_split(helper.pid());
        drop(helper);
        assert_eq!(
            snapshot.total.entries, filled,
            "the walk saw the whole table"
        );

        let (tools_time, tools_top) = top_sources(ns, &["conntrack", "-L"], "{print $4}");
        tools_times.push(tools_time);
        // The pipeline and the helper agree on the top source's count (ties may order
        // differently).
        let top = &snapshot.sources.top[0];
        let first = tools_top
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert!(
            first.starts_with(&format!("{} src=", top.mix.entries))
                && tools_top.contains(&format!("{} src={}\n", top.mix.entries, top.key)),
            "conntrack pipeline says {tools_top:?}, helper {} {}",
            top.mix.entries,
            top.key
        );
        if std::path::Path::new("/proc/net/nf_conntrack").exists() {
            let (proc_time, _) = top_sources(ns, &["cat", "/proc/net/nf_conntrack"], "{print $6}");
            proc_times.push(proc_time);
        }
    }

    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    let spread = |times: &[Duration]| {
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        format!("{:.2}–{:.2} s", min.as_secs_f64(), max.as_secs_f64())
    };
    let helper_time = median(&helper_times);
    let tools_time = median(&tools_times);
    println!("\n| measure (median of {rounds} interleaved rounds) | value |\n|---|---|");
    println!(
        "| entries in the table | {filled} (filled in {}) |",
        secs(fill_time)
    );
    walk_ms.sort_unstable();
    println!(
        "| helper Snapshot (request round trip; walk {} ms) | {} (range {}) |",
        walk_ms[walk_ms.len() / 2],
        secs(helper_time),
        spread(&helper_times)
    );
    println!(
        "| `conntrack -L \\| awk \\| sort \\| uniq -c \\| sort -rn \\| head` | {} ({:.1}× the helper; range {}) |",
        secs(tools_time),
        tools_time.as_secs_f64() / helper_time.as_secs_f64(),
        spread(&tools_times)
    );
    if proc_times.is_empty() {
        println!(
            "| /proc/net/nf_conntrack pipeline | not available (no CONFIG_NF_CONNTRACK_PROCFS) |"
        );
    } else {
        let proc_time = median(&proc_times);
        println!(
            "| `/proc/net/nf_conntrack \\| awk \\| sort \\| uniq -c \\| sort -rn \\| head` | {} ({:.1}× the helper; range {}) |",
            secs(proc_time),
            proc_time.as_secs_f64() / helper_time.as_secs_f64(),
            spread(&proc_times)
        );
    }
    println!(
        "| helper peak RSS (VmHWM) | {} KiB after the walk ({} KiB before) |",
        rss_peak, rss_idle
    );
    // Targets are reported, not asserted: a benchmark is a measurement, and a slower machine
    // (or kernel) is not a broken build.
    let ratio = tools_time.as_secs_f64() / helper_time.as_secs_f64();
    println!(
        "| target: ≥ 3× faster than the conntrack-tools pipeline | {} ({ratio:.2}×) |",
        if ratio >= 3.0 { "met" } else { "NOT met" }
    );
    println!(
        "| target: peak RSS < 32 MiB | {} ({rss_peak} KiB) |",
        if rss_peak < 32 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("| helper CPU for one walk (user / system) | {cpu} |");
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}
