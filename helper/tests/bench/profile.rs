//! Where a flood's CPU goes while the router forwards it: `perf record -a -g` (the kernel's
//! software clock, so it works where a VM has no hardware counters) over one measurement
//! window, each sample's kernel stack classified by the functions in it.
//!
//! The generators send from the inet namespace and the veth pair hands each packet to the
//! router in the sender's own softirq, so the router's work lands on the generator's (or
//! ksoftirqd's) samples. Of those, a sample is in prerouting's nft chains when its stack holds
//! `nft_do_chain_inet` below `ip_rcv` without `ip_forward` (the router's own forward chain is
//! below `ip_forward`), and in a set update when it holds `nft_dynset_eval`. Prerouting holds the
//! counting table and, once a helper has run, its blocks table: the counting table's own share
//! is the difference to a window without it.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The shares of one profiled window, of the samples the flood's processes took.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub samples: u64,
    /// In prerouting's nft chains, set updates included.
    pub chains: f64,
    /// In the set updates alone (`nft_dynset_eval` and below).
    pub set_updates: f64,
}

/// A `perf record` started for `window` after `delay`; `None` (said on stderr) without perf.
pub struct Recording {
    child: Child,
    data: tempfile::NamedTempFile,
}

impl Recording {
    pub fn start(delay: Duration, window: Duration) -> Option<Self> {
        let usable = Command::new("perf")
            .args(["record", "-q", "-o", "/dev/null", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !usable {
            eprintln!(
                "profile: SKIPPED, `perf record` does not run here (Debian: apt-get install linux-perf)"
            );
            return None;
        }
        let data = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep {}; exec perf record -q -a -g -o \"$0\" -- sleep {}",
                delay.as_secs_f64(),
                window.as_secs_f64()
            ))
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Self { child, data })
    }

    /// Waits for the recording and classifies it.
    pub fn finish(mut self) -> Shares {
        assert!(self.child.wait().unwrap().success(), "perf record failed");
        let script = Command::new("perf")
            .args(["script", "-F", "comm,ip,sym", "-i"])
            .arg(self.data.path())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(script.status.success(), "perf script failed");
        classify(&String::from_utf8_lossy(&script.stdout))
    }
}

/// `perf script -F comm,ip,sym`: a line with the command, then the stack one frame a line
/// (`address symbol+offset`), a blank line after each sample.
pub fn classify(script: &str) -> Shares {
    let (mut samples, mut chains, mut set_updates) = (0u64, 0u64, 0u64);
    for sample in script.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(comm) = lines.next().and_then(|l| l.split_whitespace().next()) else {
            continue;
        };
        if comm != "hping3" && !comm.starts_with("ksoftirqd") {
            continue;
        }
        samples += 1;
        let frames: Vec<&str> = lines
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|f| f.split('+').next().unwrap_or(f))
            .collect();
        let has = |name: &str| frames.contains(&name);
        if has("nft_do_chain_inet") && has("ip_rcv") && !has("ip_forward") {
            chains += 1;
        }
        if has("nft_dynset_eval") {
            set_updates += 1;
        }
    }
    let share = |n: u64| n as f64 / samples.max(1) as f64;
    Shares {
        samples,
        chains: share(chains),
        set_updates: share(set_updates),
    }
}

#[test]
fn a_sample_in_prerouting_counts_and_one_in_forward_does_not() {
    let script = "hping3  1234\n\
        \tffffffff81000001 nft_dynset_eval+0x10\n\
        \tffffffff81000002 nft_do_chain_inet+0x20\n\
        \tffffffff81000003 ip_rcv+0x30\n\
        \n\
        hping3  1234\n\
        \tffffffff81000002 nft_do_chain_inet+0x20\n\
        \tffffffff81000004 ip_forward+0x40\n\
        \tffffffff81000003 ip_rcv+0x30\n\
        \n\
        cc1  99\n\
        \tffffffff81000002 nft_do_chain_inet+0x20\n\
        \tffffffff81000003 ip_rcv+0x30\n\
        \n\
        ksoftirqd/1  16\n\
        \tffffffff81000005 napi_poll+0x50\n";
    let shares = classify(script);
    assert_eq!(shares.samples, 3);
    assert!((shares.chains - 1.0 / 3.0).abs() < 1e-9);
    assert!((shares.set_updates - 1.0 / 3.0).abs() < 1e-9);
}
