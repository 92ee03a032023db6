//! Counting conntrack's `table full, dropping packet` messages (and the rate limiter's
//! "suppressed" notes) in the kernel log of the last minutes, read from `/dev/kmsg` without a shell.
//!
//! `/dev/kmsg` hands out one record per `read`, oldest first; opened non-blocking, the read that
//! would wait for new messages fails with `EAGAIN` instead, which ends the walk. A record reads
//! `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,...];MESSAGE`, the time counted on the monotonic clock.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Read},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::Duration,
};

use ctguard_protocol::KernelLogSummary;
use nix::{
    fcntl::OFlag,
    time::{ClockId, clock_gettime},
};

use super::KernelError;

/// The kernel log device.
pub const DEV_KMSG: &str = "/dev/kmsg";
/// How far back the helper counts.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// A record is at most this long (the kernel's CONSOLE_EXT_LOG_MAX).
const RECORD_MAX: usize = 8192;
/// Bounds the walk even if the log were endless.
const RECORDS_MAX: usize = 1_000_000;
/// The message's words. Older kernels print `nf_conntrack: table full, dropping packet`; current
/// ones name the namespace: `nf_conntrack: table full in netns 4026532177, dropping packet`.
const TABLE_FULL: &str = "nf_conntrack: table full";
const DROPPING: &str = "dropping packet";

/// Reads every record of the kernel log at `path` and counts those of the last `window`.
pub fn read_summary(path: &Path, window: Duration) -> Result<KernelLogSummary, KernelError> {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).map_err(|e| KernelError::at(path, e))?;
    let now_us = u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000
        + u64::try_from(now.tv_nsec()).unwrap_or(0) / 1_000;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| KernelError::at(path, e))?;
    let mut counter = Counter::new(now_us, window);
    let mut buffer = vec![0u8; RECORD_MAX];
    for _ in 0..RECORDS_MAX {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(length) => counter.add(&String::from_utf8_lossy(&buffer[..length])),
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            // EPIPE: the record we were about to read was overwritten; the next read goes on.
            Err(error) if error.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(KernelError::at(path, error)),
        }
    }
    Ok(counter.summary)
}

/// Counts records within a window ending at `now_us`.
#[derive(Debug)]
pub struct Counter {
    since_us: u64,
    pub summary: KernelLogSummary,
}

impl Counter {
    pub fn new(now_us: u64, window: Duration) -> Self {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        Self {
            since_us: now_us.saturating_sub(window_us),
            summary: KernelLogSummary {
                window_secs: window.as_secs(),
                ..KernelLogSummary::default()
            },
        }
    }

    /// Counts one record; records that do not parse or are older than the window are skipped.
    pub fn add(&mut self, record: &str) {
        let Some((header, body)) = record.split_once(';') else {
            return;
        };
        let Some(at_us) = header.split(',').nth(2).and_then(|t| t.parse::<u64>().ok()) else {
            return;
        };
        if at_us < self.since_us {
            return;
        }
        // Continuation lines (" KEY=value") follow the message's first line.
        let message = body.lines().next().unwrap_or_default();
        if message.contains(TABLE_FULL) && message.contains(DROPPING) {
            self.summary.table_full += 1;
        } else if let Some(count) = suppressed(message) {
            self.summary.suppressed += count;
        }
    }
}

/// `net_ratelimit: 25 callbacks suppressed` / `printk: 25 messages suppressed` → 25.
fn suppressed(message: &str) -> Option<u64> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words.windows(3).find_map(|w| {
        (matches!(w[1], "callbacks" | "messages") && w[2].trim_end_matches('.') == "suppressed")
            .then(|| w[0].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from kernels of several generations (old `printk:` and current `net_ratelimit:`;
    /// 6.18 names the namespace).
    const RECORDS: [&str; 10] = [
        "4,1201,100000000,-;nf_conntrack: nf_conntrack: table full, dropping packet\n",
        "4,1202,400000000,-;nf_conntrack: nf_conntrack: table full, dropping packet\n",
        "4,1203,400000100,-;net_ratelimit: 1873 callbacks suppressed\n",
        "4,1204,400000200,-;nf_conntrack: table full, dropping packet.\n",
        "4,1205,400000300,-;printk: 12 messages suppressed.\n",
        "6,1206,400000400,-;eth0: link up\n SUBSYSTEM=net\n DEVICE=n2\n",
        "garbage without a header",
        "4,1207,notanumber,-;nf_conntrack: table full, dropping packet\n",
        "4,1208,400000500,-;nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet\n",
        "4,1209,400000600,-;nf_conntrack: table full in netns 4026532177 but not dropping\n",
    ];

    #[test]
    fn counts_table_full_and_suppressed_messages_in_the_window() {
        // Now is 500 s after boot; the window is 10 min back, so everything counts.
        let mut counter = Counter::new(500_000_000, Duration::from_secs(600));
        for record in RECORDS {
            counter.add(record);
        }
        assert_eq!(
            counter.summary,
            KernelLogSummary {
                window_secs: 600,
                table_full: 4,
                suppressed: 1_885,
            }
        );
    }

    #[test]
    fn records_older_than_the_window_do_not_count() {
        // Now is 500 s; a 200 s window starts at 300 s: the record at 100 s is out.
        let mut counter = Counter::new(500_000_000, Duration::from_secs(200));
        for record in RECORDS {
            counter.add(record);
        }
        assert_eq!(counter.summary.table_full, 3);
        assert_eq!(counter.summary.suppressed, 1_885);
    }

    #[test]
    fn suppressed_needs_a_number_before_the_words() {
        assert_eq!(suppressed("net_ratelimit: 7 callbacks suppressed"), Some(7));
        assert_eq!(suppressed("callbacks suppressed"), None);
        assert_eq!(suppressed("x: many messages suppressed"), None);
    }
}
