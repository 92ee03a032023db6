//! Who creates conntrack entries, counted by the kernel: the helper's counting table
//! `ctguard_creators` (installed at start, removed at a clean stop), read every few seconds into
//! a bounded history, answered as the top creators of three trailing windows without walking
//! the conntrack table.
//!
//! Why kernel counters and not ctnetlink events: events are lost (ENOBUFS) under exactly the load
//! that matters, and a walk sees only who *holds* entries, missing flows that expire between two
//! walks. A counter in a dynamic set loses nothing and costs one set update per new flow.

pub mod ruleset;
pub mod watch;
pub mod window;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use ctguard_protocol::{
    CreatorWindow, Creators, HelperError,
    creators::{MAX_CREATORS_PER_LIST, WINDOWS_SECS},
};

pub use ruleset::Families;
use watch::{Pressure, Watch};
use window::History;

use crate::child;

/// A listing of the largest allowed sets takes well under a second.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sets' size bounds (`--creator-set-size`): a listing of all twelve sets full stays below
/// what the helper reads of a child's output (16 MiB). Measured: 22 MB at 16,384 per set, where
/// every reading failed (BENCHMARKS.md, "Creators: counted by the kernel"); 8,192 lists half.
pub const SET_SIZE_RANGE: std::ops::RangeInclusive<u32> = 64..=8_192;
pub const DEFAULT_SET_SIZE: u32 = 4096;
/// How often the counters are read (`--creator-sample-secs`); the shortest window is 10 s.
pub const SAMPLE_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=10;
pub const DEFAULT_SAMPLE_SECS: u64 = 10;

/// What the helper counts, from its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountingConfig {
    /// `None`: counting is off (`--count-creators off`).
    pub families: Option<Families>,
    pub set_size: u32,
    pub sample_every: Duration,
    /// The fill, in percent of `nf_conntrack_max`, from which who is turned away is counted
    /// (`--watch-turned-away-from`; 0: always). See [`watch`].
    pub watch_from_percent: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum CountingError {
    #[error(transparent)]
    Run(#[from] child::ChildError),
    #[error("nft refused the counting table: {0}")]
    Refused(String),
    #[error(transparent)]
    Listing(#[from] ruleset::ListingError),
    #[error("cannot read {path}: {error}")]
    Fill { path: String, error: String },
}

/// Why there are no counts, in words for the panel: fixed phrases, never a child's output
/// (that goes to the helper's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    SwitchedOff,
    NotInstalled,
    NotRead,
}

impl Problem {
    fn words(self) -> &'static str {
        match self {
            Self::SwitchedOff => {
                "counting is switched off (the helper runs with --count-creators off)"
            }
            Self::NotInstalled => "nftables refused the counting table; the helper's log says why",
            Self::NotRead => "the counting table could not be read; the helper's log says why",
        }
    }
}

#[derive(Debug)]
struct State {
    history: Option<History>,
    /// The history's windows as of its newest reading, at the largest limit: each answer is a
    /// copy of these cut to its own limit (computing them costs milliseconds with full sets).
    windows: Vec<CreatorWindow>,
    problem: Option<Problem>,
    sampled_at: SystemTime,
    watch: Watch,
}

/// The counting table and what was read of it.
#[derive(Debug)]
pub struct Counting {
    config: CountingConfig,
    nft: PathBuf,
    state: Mutex<State>,
    /// Held while nft changes the table: a reinstall and a watch switch never interleave.
    changing: Mutex<()>,
}

impl Counting {
    pub fn new(config: CountingConfig) -> Self {
        Self {
            config,
            nft: child::system_binary("nft"),
            state: Mutex::new(State {
                history: None,
                windows: Vec::new(),
                problem: Some(if config.families.is_some() {
                    Problem::NotInstalled
                } else {
                    Problem::SwitchedOff
                }),
                sampled_at: SystemTime::UNIX_EPOCH,
                watch: Watch::new(config.watch_from_percent),
            }),
            changing: Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only counts behind: still safe to read.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the table with an empty one and starts the history again. With counting off,
    /// removes a table an earlier run left (either family).
    pub fn install(&self) -> Result<(), CountingError> {
        let Some(families) = self.config.families else {
            for families in [Families::Ipv4, Families::Both] {
                // Absent is the usual case; "table X; delete table X" succeeds either way.
                let _ = self.nft_script(&ruleset::delete_script(families));
            }
            return Ok(());
        };
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let watching = {
            let state = self.state();
            state.watch.always() || state.watch.since().is_some()
        };
        let result = self.nft_script(&ruleset::script(families, self.config.set_size, watching));
        let mut state = self.state();
        match &result {
            Ok(()) => {
                if watching && state.watch.since().is_none() {
                    state.watch.switched(true, SystemTime::now());
                }
                let history = History::installed(Instant::now(), WINDOWS_SECS[2]);
                state.windows = history.windows();
                state.history = Some(history);
                state.problem = None;
                state.sampled_at = SystemTime::now();
            }
            Err(_) => {
                state.history = None;
                state.windows = Vec::new();
                state.problem = Some(Problem::NotInstalled);
            }
        }
        result
    }

    /// Removes the table (a clean stop): nothing keeps counting for a helper that is gone.
    pub fn remove(&self) {
        if let Some(families) = self.config.families
            && let Err(error) = self.nft_script(&ruleset::delete_script(families))
        {
            tracing::warn!(%error, "could not remove the counting table");
        }
    }

    fn nft_script(&self, script: &str) -> Result<(), CountingError> {
        let finished = child::run(
            &self.nft,
            &["-f", "-"],
            Some(script.as_bytes()),
            child::Stdout::Discard,
            NFT_TIMEOUT,
        )?;
        if finished.status.success() {
            Ok(())
        } else {
            Err(CountingError::Refused(finished.stderr))
        }
    }

    /// Reads the counters once into the history. A table that went missing (`nft flush
    /// ruleset`) is put back, and its counts start again.
    pub fn sample(&self) -> Result<(), CountingError> {
        let Some(families) = self.config.families else {
            return Ok(());
        };
        let family = families.table_family();
        let finished = child::run(
            &self.nft,
            &["-j", "list", "table", family, ruleset::TABLE],
            None,
            child::Stdout::Keep,
            NFT_TIMEOUT,
        )?;
        let at = Instant::now();
        if !finished.status.success() {
            if finished.stderr.contains("No such file or directory") {
                tracing::warn!("the counting table is gone; installing it again");
                return self.install();
            }
            self.state().problem = Some(Problem::NotRead);
            return Err(CountingError::Refused(finished.stderr));
        }
        let mut reading =
            match ruleset::parse_listing(&String::from_utf8_lossy(&finished.stdout), families) {
                Ok(reading) => reading,
                Err(error) => {
                    self.state().problem = Some(Problem::NotRead);
                    return Err(error.into());
                }
            };
        // Right after the listing, so the two cover nearly the same moment.
        match crate::ctnetlink::statistics() {
            Ok(cpus) => reading.kernel_drops = drop_counters(&cpus),
            Err(error) => tracing::debug!(%error, "no drop statistic beside the counts"),
        }
        tracing::debug!(
            total = reading.total,
            kernel_drops = ?reading.kernel_drops,
            "counting table read"
        );
        let mut state = self.state();
        if reading.total < state.history.as_ref().map_or(0, History::newest_total) {
            // Counters never go back: someone replaced the table. Start again from here.
            tracing::warn!("the counting table was replaced; its counts start again");
            state.history = Some(History::installed(at, WINDOWS_SECS[2]));
        }
        let watched = state.watch.since().is_some();
        let history = state
            .history
            .get_or_insert_with(|| History::installed(at, WINDOWS_SECS[2]));
        history.push(at, reading, watched);
        let windows = history.windows();
        state.windows = windows;
        state.problem = None;
        state.sampled_at = SystemTime::now();
        Ok(())
    }

    /// Reads the table's fill and the drop statistic and hooks the turned-away stages in or
    /// out as [`watch`] says.
    pub fn watch_tick(&self) -> Result<(), CountingError> {
        let Some(families) = self.config.families else {
            return Ok(());
        };
        let pressure = Pressure {
            count: read_netfilter_u64("nf_conntrack_count")?,
            max: read_netfilter_u64("nf_conntrack_max")?,
            drops: crate::ctnetlink::statistics()
                .inspect_err(|error| tracing::debug!(%error, "no drop statistic for the watch"))
                .ok()
                .map(|cpus| drop_counters(&cpus)),
        };
        let (wanted, watching) = {
            let mut state = self.state();
            if state.history.is_none() {
                return Ok(()); // not installed: nothing to hook in
            }
            let watching = state.watch.since().is_some();
            (state.watch.wanted(Instant::now(), &pressure), watching)
        };
        if wanted == watching {
            return Ok(());
        }
        // A reading right before the switch: the kernel's drops up to here fall on the side
        // they happened on (not counted per source before, counted after), so the figure the
        // per-source counts are compared with covers the same seconds as they do.
        if let Err(error) = self.sample() {
            tracing::warn!(%error, "no reading before switching the watch");
        }
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.nft_script(&ruleset::watch_script(families, wanted))?;
        tracing::info!(
            count = pressure.count,
            max = pressure.max,
            watching = wanted,
            "who is turned away: {}",
            if wanted {
                "counting"
            } else {
                "no longer counting"
            }
        );
        self.state().watch.switched(wanted, SystemTime::now());
        Ok(())
    }

    /// The answer to `creators { limit }`, from memory.
    pub fn answer(&self, limit: u16) -> Result<Creators, HelperError> {
        if limit > MAX_CREATORS_PER_LIST {
            return Err(HelperError::TooManyCreators {
                given: limit,
                max: MAX_CREATORS_PER_LIST,
            });
        }
        let state = self.state();
        let windows = state
            .windows
            .iter()
            .map(|window| window::shortened(window, usize::from(limit)))
            .collect();
        Ok(Creators {
            counting: state.history.is_some() && state.problem.is_none(),
            problem: state.problem.map(|p| p.words().to_owned()),
            set_capacity: self.config.set_size,
            sample_secs: u32::try_from(self.config.sample_every.as_secs()).unwrap_or(u32::MAX),
            sampled_at: unix_secs(state.sampled_at),
            windows,
            watching_since: state.watch.since().map(unix_secs),
            watch_from_percent: state.watch.from_percent(),
        })
    }

    /// Installs the table and reads it every `sample_every` on the blocking pool, for the
    /// helper's lifetime.
    pub fn spawn(self: &Arc<Self>) {
        if self.config.families.is_none() {
            if let Err(error) = self.install() {
                tracing::warn!(%error, "could not remove an old counting table");
            }
            return;
        }
        let counting = Arc::clone(self);
        tokio::spawn(async move {
            let installing = Arc::clone(&counting);
            match tokio::task::spawn_blocking(move || installing.install()).await {
                Ok(Ok(())) => tracing::info!("counting creators of entries"),
                Ok(Err(error)) => tracing::error!(%error, "cannot install the counting table"),
                Err(error) => tracing::error!(%error, "the counting task failed"),
            }
            let watching = Arc::clone(&counting);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(watch::TICK);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let ticking = Arc::clone(&watching);
                    match tokio::task::spawn_blocking(move || ticking.watch_tick()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::warn!(%error, "the turned-away watch failed"),
                        Err(error) => tracing::error!(%error, "the watch task failed"),
                    }
                }
            });
            let mut ticks = tokio::time::interval(counting.config.sample_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // immediate: the table was just installed
            loop {
                ticks.tick().await;
                let sampling = Arc::clone(&counting);
                match tokio::task::spawn_blocking(move || sampling.sample()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "reading the counting table failed"),
                    Err(error) => tracing::error!(%error, "the counting task failed"),
                }
            }
        });
    }
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// conntrack's per-CPU `drop` counters, as the kernel keeps them (`unsigned int`s that wrap,
/// carried in u64s by the statistics reader).
fn drop_counters(
    cpus: &[ctguard_protocol::status::CpuStats],
) -> std::collections::BTreeMap<u32, u32> {
    cpus.iter()
        .map(|cpu| (cpu.cpu, u32::try_from(cpu.stats.drop).unwrap_or(u32::MAX)))
        .collect()
}

/// `/proc/sys/net/netfilter/<name>`, of the helper's own network namespace.
fn read_netfilter_u64(name: &str) -> Result<u64, CountingError> {
    let path = format!("/proc/sys/net/netfilter/{name}");
    let text = std::fs::read_to_string(&path).map_err(|error| CountingError::Fill {
        path: path.clone(),
        error: error.to_string(),
    })?;
    text.trim().parse().map_err(|_| CountingError::Fill {
        path,
        error: format!("not a number: {:?}", text.trim()),
    })
}
