//! Counting conntrack's `table full` messages in the kernel log of the last minutes, by the table
//! they name, and the network rate limit's "suppressed" notes, read from `/dev/kmsg` without a
//! shell.
//!
//! `/dev/kmsg` hands out one record per `read`, oldest first; opened non-blocking, the read that
//! would wait for new messages fails with `EAGAIN` instead, which ends the walk. A record reads
//! `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,...];MESSAGE`, the time counted on the monotonic clock.
//!
//! `__nf_conntrack_alloc` (net/netfilter/nf_conntrack_core.c), since 6.17:
//!
//! ```c
//! if (net == &init_net)
//!         net_warn_ratelimited("nf_conntrack: table full, dropping packet\n");
//! else
//!         net_warn_ratelimited("nf_conntrack: table full in netns %u, dropping packet\n",
//!                              net->ns.inum);
//! ```
//!
//! (the file's `pr_fmt` puts a second `nf_conntrack: ` in front). Before 6.17 every namespace
//! printed the first form.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
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
/// The message's words, both forms: `table full, dropping packet` and
/// `table full in netns 4026532177, dropping packet`.
const TABLE_FULL: &str = "nf_conntrack: table full";
const IN_NETNS: &str = " in netns ";
const DROPPING: &str = "dropping packet";
/// The first kernel that names the namespace (major, minor).
const NAMING_RELEASE: (u32, u32) = (6, 17);
/// The initial network namespace's fixed inode (`PROC_NET_INIT_INO`, include/uapi/linux/nsfs.h)
/// on kernels that fix it; older ones number it like any other namespace, from 0xF0000000 up
/// (`PROC_DYNAMIC_FIRST`), so no other namespace ever has this one.
const PROC_NET_INIT_INO: u64 = 0xEFFF_FFF9;

/// What the helper knows to attribute a message to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    /// The watched namespace's inode, if it could be read.
    pub watched: Option<u64>,
    /// Whether the watched namespace is the initial one, whose messages have the plain form.
    pub watched_is_initial: bool,
    /// Whether this kernel names a namespace other than the initial one (6.17+). A message
    /// naming one in the log proves it too.
    pub kernel_names_namespaces: bool,
}

impl Attribution {
    /// The live facts: the reading thread's namespace (the watched one), the initial namespace as
    /// pid 1's (falling back to the fixed inode where pid 1 cannot be looked at) and the release.
    pub fn live(proc: &Path) -> Self {
        let inode = |relative: &str| std::fs::metadata(proc.join(relative)).map(|m| m.ino());
        let watched = inode("thread-self/ns/net")
            .inspect_err(|error| tracing::debug!(%error, "watched namespace unreadable"))
            .ok();
        let initial = inode("1/ns/net").ok();
        let release =
            std::fs::read_to_string(proc.join("sys/kernel/osrelease")).unwrap_or_default();
        Self {
            watched,
            watched_is_initial: watched
                .is_some_and(|watched| Some(watched) == initial || watched == PROC_NET_INIT_INO),
            kernel_names_namespaces: names_namespaces(&release),
        }
    }
}

/// Whether a kernel of this release (`6.18.44-fc-v857`) prints `table full in netns N`.
fn names_namespaces(release: &str) -> bool {
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= NAMING_RELEASE,
        _ => false,
    }
}

/// Reads every record of the kernel log at `path`, counts those of the last `window` and
/// attributes them to the watched table (the reading thread's namespace) or others.
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
    Ok(counter.finish(Attribution::live(Path::new("/proc"))))
}

/// Counts records within a window ending at `now_us`; [`Counter::finish`] attributes them.
#[derive(Debug)]
pub struct Counter {
    since_us: u64,
    window_secs: u64,
    /// `table full, dropping packet`: the initial namespace's (6.17+), or anyone's before.
    plain: u64,
    /// `table full in netns N, dropping packet`, by N.
    named: std::collections::BTreeMap<u64, u64>,
    suppressed: u64,
}

impl Counter {
    pub fn new(now_us: u64, window: Duration) -> Self {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        Self {
            since_us: now_us.saturating_sub(window_us),
            window_secs: window.as_secs(),
            plain: 0,
            named: Default::default(),
            suppressed: 0,
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
        if let Some(table) = table_full(message) {
            match table {
                Table::Plain => self.plain += 1,
                Table::Named(inode) => *self.named.entry(inode).or_default() += 1,
            }
        } else if let Some(count) = suppressed(message) {
            self.suppressed += count;
        }
    }

    /// The counts, each message given to the watched table, another one, or neither.
    pub fn finish(self, attribution: Attribution) -> KernelLogSummary {
        let mut summary = KernelLogSummary {
            window_secs: self.window_secs,
            netns_inode: attribution.watched,
            suppressed: self.suppressed,
            ..KernelLogSummary::default()
        };
        for (inode, count) in &self.named {
            if Some(*inode) == attribution.watched {
                summary.table_full += count;
            } else {
                summary.other_tables += count;
            }
        }
        let names = attribution.kernel_names_namespaces || !self.named.is_empty();
        if attribution.watched_is_initial {
            summary.table_full += self.plain;
        } else if names {
            summary.other_tables += self.plain;
        } else {
            summary.unattributed += self.plain;
        }
        summary
    }
}

/// Whose table a `table full` message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Plain,
    Named(u64),
}

/// `nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet` → that inode.
fn table_full(message: &str) -> Option<Table> {
    let (_, rest) = message.split_once(TABLE_FULL)?;
    if !rest.contains(DROPPING) {
        return None;
    }
    let Some(named) = rest.strip_prefix(IN_NETNS) else {
        return rest.starts_with(',').then_some(Table::Plain);
    };
    let (inode, after) = named.split_once(',')?;
    after
        .trim_start()
        .starts_with(DROPPING)
        .then_some(())
        .and(inode.parse().ok().map(Table::Named))
}

/// `net_ratelimit: 25 callbacks suppressed` → 25: what `___ratelimit` prints (lib/ratelimit.c,
/// `"%s: %d callbacks suppressed"`) for `net_ratelimit()`, the one limit every network message
/// printed through it shares. Other limits' notes (`printk: N messages suppressed`) are not
/// network messages and do not count.
fn suppressed(message: &str) -> Option<u64> {
    let rest = message.split_once("net_ratelimit: ")?.1;
    let (count, words) = rest.split_once(' ')?;
    (words.trim_end().trim_end_matches('.') == "callbacks suppressed")
        .then(|| count.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watched namespace's inode in these records (the sandbox's router on 6.18).
    const WATCHED: u64 = 4_026_532_177;

    /// As kernels of several generations print them (before 6.17 the plain form for every
    /// namespace; 6.17+ the initial namespace's plain, the others' naming them).
    const RECORDS: [&str; 11] = [
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
        "4,1210,400000700,-;nf_conntrack: nf_conntrack: table full in netns 4026532300, dropping packet\n",
    ];

    fn counted(window: Duration) -> Counter {
        // Now is 500 s after boot.
        let mut counter = Counter::new(500_000_000, window);
        for record in RECORDS {
            counter.add(record);
        }
        counter
    }

    fn watching(watched_is_initial: bool, kernel_names_namespaces: bool) -> Attribution {
        Attribution {
            watched: Some(if watched_is_initial {
                PROC_NET_INIT_INO
            } else {
                WATCHED
            }),
            watched_is_initial,
            kernel_names_namespaces,
        }
    }

    #[test]
    fn the_watched_namespace_gets_the_messages_naming_it_and_no_others() {
        let summary = counted(WINDOW).finish(watching(false, true));
        assert_eq!(
            summary,
            KernelLogSummary {
                window_secs: 600,
                table_full: 1,
                // The other namespace's, and the plain ones: the initial namespace's on 6.17+.
                other_tables: 1 + 3,
                unattributed: 0,
                netns_inode: Some(WATCHED),
                suppressed: 1_873,
            }
        );
    }

    #[test]
    fn the_initial_namespace_keeps_the_plain_form() {
        let summary = counted(WINDOW).finish(watching(true, true));
        assert_eq!(
            summary.table_full, 3,
            "the plain ones are the initial namespace's"
        );
        assert_eq!(
            summary.other_tables, 2,
            "both namespaces named are someone else's"
        );
        assert_eq!(summary.unattributed, 0);
    }

    #[test]
    fn before_6_17_a_plain_message_cannot_be_given_to_a_table() {
        let mut counter = Counter::new(500_000_000, WINDOW);
        counter.add(RECORDS[1]);
        let summary = counter.finish(watching(false, false));
        assert_eq!((summary.table_full, summary.unattributed), (0, 1));
        // One named message in the log shows this kernel names namespaces after all.
        let mut counter = Counter::new(500_000_000, WINDOW);
        counter.add(RECORDS[1]);
        counter.add(RECORDS[10]);
        let summary = counter.finish(watching(false, false));
        assert_eq!((summary.other_tables, summary.unattributed), (2, 0));
    }

    #[test]
    fn records_older_than_the_window_do_not_count() {
        // A 200 s window starts at 300 s: the record at 100 s is out.
        let summary = counted(Duration::from_secs(200)).finish(watching(true, true));
        assert_eq!(summary.table_full, 2);
        assert_eq!(summary.suppressed, 1_873);
    }

    #[test]
    fn suppressed_counts_the_network_rate_limit_only() {
        assert_eq!(suppressed("net_ratelimit: 7 callbacks suppressed"), Some(7));
        assert_eq!(suppressed("callbacks suppressed"), None);
        assert_eq!(suppressed("net_ratelimit: many callbacks suppressed"), None);
        // printk's own limit holds back console lines, not network messages.
        assert_eq!(suppressed("printk: 12 messages suppressed."), None);
    }

    #[test]
    fn a_release_names_namespaces_from_6_17() {
        assert!(names_namespaces("6.18.44-fc-v857\n"));
        assert!(names_namespaces("6.17.0"));
        assert!(names_namespaces("7.0.1"));
        assert!(!names_namespaces("6.16.9-arch1"));
        assert!(!names_namespaces("5.10.0-28-amd64"));
        assert!(!names_namespaces(""));
    }

    #[test]
    fn the_live_attribution_is_this_threads_namespace() {
        let attribution = Attribution::live(Path::new("/proc"));
        let link = std::fs::read_link("/proc/thread-self/ns/net").expect("readlink");
        assert_eq!(
            link.to_string_lossy(),
            format!("net:[{}]", attribution.watched.expect("readable"))
        );
    }
}
