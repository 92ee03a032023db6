//! The snapshot benchmark (ignored by default; `scripts/bench.sh` runs it in release mode): fills
//! a sandbox router's table to CTGUARD_BENCH_ENTRIES (default 262,144) and compares, in one run,
//! the helper's Snapshot with the conntrack-tools pipeline
//! (`conntrack -L | awk | sort | uniq -c | sort -rn | head`) and the /proc/net/nf_conntrack text
//! pipeline, reporting ratios and the helper's peak RSS as a Markdown table; then, on the same
//! table, reads the creators against the walk and the pipeline, and measures the counting
//! table's cost under a flood and its counts against a generator's (`bench/creators.rs`).

#![allow(clippy::unwrap_used)]

#[path = "integration/support.rs"]
mod support;

#[path = "bench/creators.rs"]
mod creators_bench;

#[path = "bench/profile.rs"]
mod profile;

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

/// The helper's CPU time since it started (user + system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// How often the helper walks a table of this size when it is asked far more often than that
/// (every open Suspicious page, every drill-down): the walks it actually ran in a window of
/// requests every 250 ms, and its CPU time over the window. The rule is one walk per
/// max(1 s, 4 × the last walk's time); this measures what the rule gives on the real table.
fn walk_cadence(ns: &str) -> (usize, Duration, f64, Duration) {
    let helper = HelperProcess::start(&["--group", "root", "--netns", ns]);
    let mut session = helper.session();
    let mut snapshot_now = || {
        let Response::Snapshot { snapshot } = session.ask(&Request::Snapshot {}) else {
            panic!("no snapshot");
        };
        snapshot
    };
    let cpu_before = cpu_seconds(helper.pid());
    let started = Instant::now();
    let first = snapshot_now();
    // Three intervals of the rule at this walk's cost: at least three walks after the first.
    let rule = Duration::from_millis(first.walk_ms * 4).max(Duration::from_secs(1));
    let window = (rule * 3).max(Duration::from_secs(20));
    let mut taken = std::collections::BTreeSet::from([first.taken_unix_ms]);
    while started.elapsed() < window {
        std::thread::sleep(Duration::from_millis(250));
        taken.insert(snapshot_now().taken_unix_ms);
    }
    let elapsed = started.elapsed();
    let share = (cpu_seconds(helper.pid()) - cpu_before) / elapsed.as_secs_f64();
    assert!(
        taken.len() >= 2,
        "the helper walked only once in {elapsed:?} ({taken:?})"
    );
    (taken.len(), elapsed, share, rule)
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
            let (proc_time, proc_top) =
                top_sources(ns, &["cat", "/proc/net/nf_conntrack"], "{print $6}");
            // A pipeline that read nothing measured nothing: it must have counted groups.
            let counted: u64 = proc_top
                .lines()
                .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
                .sum();
            assert!(
                counted > 0,
                "the /proc/net/nf_conntrack pipeline counted nothing: {proc_top:?}"
            );
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
    let (walks, window, share, rule) = walk_cadence(ns);
    println!(
        "| walks under the rate limit, asked every 250 ms for {:.0} s | {walks} walks: one per {:.1} s \
         (the rule, max(1 s, 4 × walk), gives {:.1} s); the helper used {:.0} % of one core, however \
         many viewers ask |",
        window.as_secs_f64(),
        window.as_secs_f64() / walks as f64,
        rule.as_secs_f64(),
        share * 100.0
    );
    // The creators against the walk, at the size this run filled.
    creators_bench::reading_vs_walk(&net, filled);
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

/// xorshift64*: deterministic "random" addresses and ports for the aggregation benchmark.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `count` TCP flows to one server, from sources that all lie in 10.7.0.0/16 (`skewed`) or
/// anywhere in 10.0.0.0/8 (random), with random source ports.
fn synthetic_flows(count: usize, skewed: bool) -> Vec<ctguard_helper::ctnetlink::parse::Flow> {
    use ctguard_helper::ctnetlink::parse::{Flow, Tuple};
    use std::net::{IpAddr, Ipv4Addr};
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let bits = random.next();
            let source = if skewed {
                Ipv4Addr::new(10, 7, (bits >> 8) as u8, bits as u8)
            } else {
                Ipv4Addr::new(10, (bits >> 16) as u8, (bits >> 8) as u8, bits as u8)
            };
            let original = Tuple {
                source: IpAddr::V4(source),
                destination: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
                protocol: 6,
                sport: Some((bits >> 24) as u16 | 1024),
                dport: Some(443),
            };
            let reply = Tuple {
                source: original.destination,
                destination: original.source,
                sport: original.dport,
                dport: original.sport,
                ..original
            };
            Flow {
                original,
                reply,
                status: 0x0e, // seen reply, assured, confirmed
                tcp_state: Some(3),
                timeout_secs: 300,
            }
        })
        .collect()
}

/// The hash the snapshot's maps used before: FxHash's multiply-rotate, unseeded.
#[derive(Default)]
struct UnseededFx(u64);

impl std::hash::Hasher for UnseededFx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Inserts every flow's source into a map built with `S` (the per-source map of a walk, alone).
fn count_sources<S: std::hash::BuildHasher + Default>(
    flows: &[ctguard_helper::ctnetlink::parse::Flow],
) -> Duration {
    let started = Instant::now();
    let mut map: std::collections::HashMap<std::net::IpAddr, u64, S> =
        std::collections::HashMap::default();
    for flow in flows {
        *map.entry(flow.original.source).or_default() += 1;
    }
    assert!(!map.is_empty());
    started.elapsed()
}

#[test]
#[ignore = "a benchmark: scripts/bench.sh runs it"]
fn aggregation_benchmark() {
    let count: usize = std::env::var("CTGUARD_BENCH_AGGREGATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_048_576);
    let skewed = synthetic_flows(count, true);
    let random = synthetic_flows(count, false);
    let aggregate = |flows: &[ctguard_helper::ctnetlink::parse::Flow]| {
        let started = Instant::now();
        let mut aggregate = ctguard_helper::snapshot::Aggregate::default();
        for flow in flows {
            aggregate.add(flow);
        }
        let snapshot = aggregate.finish(0, 0);
        assert_eq!(
            snapshot.total.entries, count as u64,
            "every flow was counted"
        );
        started.elapsed()
    };
    type Old = std::hash::BuildHasherDefault<UnseededFx>;
    type New = std::hash::RandomState;
    let (mut walk_skewed, mut walk_random) = (Vec::new(), Vec::new());
    let (mut old_skewed, mut old_random, mut new_skewed, mut new_random) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved rounds, so a slower moment of the machine costs both sides alike.
    for _ in 0..5 {
        walk_skewed.push(aggregate(&skewed));
        walk_random.push(aggregate(&random));
        old_skewed.push(count_sources::<Old>(&skewed));
        old_random.push(count_sources::<Old>(&random));
        new_skewed.push(count_sources::<New>(&skewed));
        new_random.push(count_sources::<New>(&random));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let (ws, wr) = (median(&walk_skewed), median(&walk_random));
    let (os, or) = (median(&old_skewed), median(&old_random));
    let (ns, nr) = (median(&new_skewed), median(&new_random));
    println!(
        "\n| {count} flows (medians of 5 interleaved rounds) | one /16 | random | /16 ÷ random |"
    );
    println!("|---|---|---|---|");
    println!(
        "| the helper's aggregation (every map) | {:.0} ms | {:.0} ms | {:.2}× |",
        ms(ws),
        ms(wr),
        ratio(ws, wr)
    );
    println!(
        "| per-source map, seeded SipHash (now) | {:.0} ms | {:.0} ms | {:.2}× |",
        ms(ns),
        ms(nr),
        ratio(ns, nr)
    );
    println!(
        "| per-source map, unseeded FxHash (before) | {:.0} ms | {:.0} ms | {:.2}× |",
        ms(os),
        ms(or),
        ratio(os, or)
    );
    assert!(
        ws > Duration::ZERO && wr > Duration::ZERO,
        "no work was measured"
    );
}
