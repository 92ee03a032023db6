//! SetSysctl and ReadSysctls: allowlisted keys within their bounds, journaled, written where they
//! live, read back.
//! Per-namespace keys are written in the watched namespace (where the process is); global keys
//! only from the initial namespace, by a short-lived thread that enters it through the
//! descriptor opened before the helper left it (setns moves only the calling thread).
//! Before a write: bounds (`SysctlKey`), then the checks against the live kernel (`limits.rs`);
//! after it, the read back may differ only by the kernel's own rounding (`rounding.rs`).

pub mod limits;
pub mod module;
pub mod persist;
pub mod rounding;

use std::{
    fs::File,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use ctguard_protocol::{
    ConntrackModule, HelperError, JournalAction, JournalEvent, JournalRef, ShortText, SysctlKey,
    SysctlReading, SysctlScope,
};
use nix::sched::{CloneFlags, setns};

use crate::{blocks::Requester, journal::Journal, kernel::slab, state_dir::StateDir};

/// The result of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    pub previous: u64,
    pub value: u64,
    pub persisted: bool,
    /// The intent record of the write.
    pub journal: JournalRef,
}

#[derive(Debug)]
pub struct Sysctls {
    proc_sys: PathBuf,
    /// The initial namespace, when the helper left it for a watched one.
    initial_netns: Option<Arc<File>>,
    /// Where persisted values go (`persist.rs`): the sysctl.d file and, for the hash size, which
    /// is also a module parameter applied when nf_conntrack loads (before sysctl.d runs), the
    /// modprobe.d file.
    state: Arc<StateDir>,
    journal: Arc<Journal>,
    /// The named namespace the helper watches (`--netns`): its per-namespace keys are persisted
    /// to `netns.conf` and re-applied there at start, never to the boot's sysctl.d file.
    watched_netns: Option<String>,
    /// `rounding::buckets_per_page()`, read once.
    buckets_per_page: u64,
    /// /sys/module/nf_conntrack (`module.rs`): built in, or a module that modprobe.d sizes.
    module_dir: PathBuf,
    /// One write at a time: read, write and read back must not interleave.
    lock: Mutex<()>,
}

/// Who asked for a write, as the journal's intent records it: a peer, or the helper itself.
struct Origin {
    actor: Option<ShortText>,
    requested_by: Option<IpAddr>,
    peer_uid: Option<u32>,
}

/// What a start-up re-apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reapplied {
    pub applied: Vec<(SysctlKey, u64)>,
    pub failed: Vec<(SysctlKey, HelperError)>,
}

fn read_value(path: &Path, key: SysctlKey) -> Result<u64, HelperError> {
    let text = std::fs::read_to_string(path).map_err(|e| HelperError::KernelRead {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    // Some files (nf_conntrack_buckets on old kernels) hold several fields; the first counts.
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| HelperError::KernelRead {
            path: key.name().into(),
            detail: format!("not a number: {:?}", text.trim()),
        })
}

/// Reads the previous value, writes, reads back: (previous, read back).
fn write_here(path: &Path, key: SysctlKey, value: u64) -> Result<(u64, u64), HelperError> {
    let previous = read_value(path, key)?;
    std::fs::write(path, format!("{value}\n")).map_err(|e| HelperError::SysctlRefused {
        key,
        value,
        detail: e.to_string(),
    })?;
    Ok((previous, read_value(path, key)?))
}

impl Sysctls {
    pub fn new(
        proc_sys: impl Into<PathBuf>,
        initial_netns: Option<File>,
        state: Arc<StateDir>,
        journal: Arc<Journal>,
    ) -> Self {
        Self {
            proc_sys: proc_sys.into(),
            initial_netns: initial_netns.map(Arc::new),
            state,
            journal,
            watched_netns: None,
            buckets_per_page: rounding::buckets_per_page(),
            module_dir: PathBuf::from(module::SYS_MODULE_DIR),
            lock: Mutex::new(()),
        }
    }

    /// Reads nf_conntrack's presence from `dir` instead of /sys/module/nf_conntrack (tests).
    pub fn with_module_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.module_dir = dir.into();
        self
    }

    /// How nf_conntrack is in this kernel, read now (a module may be loaded since the start).
    pub fn conntrack_module(&self) -> ConntrackModule {
        module::conntrack_module(&self.module_dir)
    }

    /// Names the namespace the helper watches (`--netns`), whose per-namespace keys are
    /// persisted apart from the boot's sysctl.d file.
    pub fn watching(mut self, netns: Option<String>) -> Self {
        self.watched_netns = netns;
        self
    }

    /// Where a persisted value of `key` goes: the boot applies sysctl.d to the host's own
    /// namespace, so a per-namespace key of a watched namespace must not go there.
    fn persists_to_namespace_file(&self, key: SysctlKey) -> bool {
        self.watched_netns.is_some() && key.scope() == SysctlScope::PerNamespace
    }

    /// Runs `work` where `key` lives: here for per-namespace keys (and for global ones while the
    /// helper is still in the initial namespace), else on a short-lived thread that enters the
    /// initial namespace first (setns moves only the calling thread).
    fn where_it_lives<T: Send>(
        &self,
        key: SysctlKey,
        work: impl FnOnce(&Path) -> Result<T, HelperError> + Send,
        refused: impl Fn(String) -> HelperError + Send + Sync,
    ) -> Result<T, HelperError> {
        let path = self.proc_sys.join(key.proc_path());
        let initial = match (key.scope(), &self.initial_netns) {
            (SysctlScope::Global, Some(initial)) => Arc::clone(initial),
            _ => return work(&path),
        };
        let refused = &refused;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(initial.as_ref(), CloneFlags::CLONE_NEWNET)
                        .map_err(|e| refused(format!("cannot enter the initial namespace: {e}")))?;
                    work(&path)
                })
                .join()
                .unwrap_or_else(|_| Err(refused("the worker thread panicked".into())))
        })
    }

    fn write(&self, key: SysctlKey, value: u64) -> Result<(u64, u64), HelperError> {
        self.where_it_lives(
            key,
            |path| write_here(path, key, value),
            |detail| HelperError::SysctlRefused { key, value, detail },
        )
    }

    /// `key`'s live value, read where it lives.
    fn live(&self, key: SysctlKey) -> Result<u64, HelperError> {
        self.where_it_lives(
            key,
            |path| read_value(path, key),
            |detail| HelperError::KernelRead {
                path: key.name().into(),
                detail,
            },
        )
    }

    /// /proc, of which `proc_sys` is the `sys` directory: meminfo and slabinfo are host-wide.
    fn proc_root(&self) -> &Path {
        self.proc_sys.parent().unwrap_or(Path::new("/proc"))
    }

    /// The table's limit, buckets, entry size and the host's RAM, as the kernel says now.
    fn table_now(&self) -> Result<limits::TableNow, HelperError> {
        let meminfo_path = self.proc_root().join("meminfo");
        let memory_bytes = std::fs::read_to_string(&meminfo_path)
            .map_err(|e| e.to_string())
            .and_then(|text| limits::mem_total_bytes(&text).ok_or_else(|| "no MemTotal".into()))
            .map_err(|detail| HelperError::KernelRead {
                path: meminfo_path.display().to_string(),
                detail,
            })?;
        // Root-only and optional (some kernels list no such cache): the fallback size then.
        let object_bytes = std::fs::read_to_string(self.proc_root().join("slabinfo"))
            .ok()
            .and_then(|text| slab::object_size(&text, "nf_conntrack"));
        Ok(limits::TableNow {
            max: self.live(SysctlKey::NfConntrackMax)?,
            buckets: self.live(SysctlKey::NfConntrackBuckets)?,
            object_bytes,
            memory_bytes,
        })
    }

    /// The refusals that weigh `value` against the live kernel.
    fn refuse_harm(&self, key: SysctlKey, value: u64) -> Result<(), HelperError> {
        match key {
            SysctlKey::NeighGcThresh1 | SysctlKey::NeighGcThresh2 | SysctlKey::NeighGcThresh3 => {
                limits::check_neigh_order(key, value, |other| self.live(other))
            }
            SysctlKey::NfConntrackMax | SysctlKey::NfConntrackBuckets => {
                let kept = rounding::kernel_keeps(key, value, self.buckets_per_page);
                limits::check_table_memory(key, kept, &self.table_now()?)
            }
            _ => Ok(()),
        }
    }

    /// Every allowlisted key's live value (`None` where this kernel has no such file) and the
    /// value the persisted file holds.
    pub fn read_all(&self) -> Result<Vec<SysctlReading>, HelperError> {
        let persisted = persist::read(&self.state).map_err(|error| HelperError::KernelRead {
            path: self
                .state
                .display_path(persist::SYSCTL_FILE)
                .display()
                .to_string(),
            detail: error.to_string(),
        })?;
        let namespace_file = self.namespace_values()?;
        SysctlKey::ALL
            .iter()
            .map(|&key| {
                let value = self.where_it_lives(
                    key,
                    |path| match read_value(path, key) {
                        Ok(value) => Ok(Some(value)),
                        Err(_) if !path.exists() => Ok(None),
                        Err(error) => Err(error),
                    },
                    |detail| HelperError::KernelRead {
                        path: key.name().into(),
                        detail,
                    },
                )?;
                let persisted = if self.persists_to_namespace_file(key) {
                    namespace_file.get(&key)
                } else {
                    persisted.get(&key)
                };
                Ok(SysctlReading {
                    key,
                    value,
                    persisted: persisted.copied(),
                })
            })
            .collect()
    }

    /// The values `netns.conf` holds for the watched namespace (none for another namespace).
    fn namespace_values(&self) -> Result<std::collections::BTreeMap<SysctlKey, u64>, HelperError> {
        let Some(watched) = &self.watched_netns else {
            return Ok(Default::default());
        };
        let saved = persist::read_netns(&self.state).map_err(|error| HelperError::KernelRead {
            path: self
                .state
                .display_path(persist::NETNS_FILE)
                .display()
                .to_string(),
            detail: error.to_string(),
        })?;
        Ok(saved
            .filter(|saved| &saved.netns == watched)
            .map(|saved| saved.values)
            .unwrap_or_default())
    }

    fn persist(&self, key: SysctlKey, value: u64) -> Result<(), (PathBuf, std::io::Error)> {
        let at = |name| self.state.display_path(name);
        if let Some(netns) = &self.watched_netns
            && self.persists_to_namespace_file(key)
        {
            return persist::persist_netns(&self.state, netns, key, value)
                .map_err(|e| (at(persist::NETNS_FILE), e));
        }
        persist::persist(&self.state, key, value).map_err(|e| (at(persist::SYSCTL_FILE), e))?;
        // Built in, there is no module to give an option to: the sysctl.d file alone resizes
        // the hash at boot (the kernel command line would size it from the start).
        if key == SysctlKey::NfConntrackBuckets
            && self.conntrack_module() != ConntrackModule::BuiltIn
        {
            persist::persist_hashsize(&self.state, value)
                .map_err(|e| (at(persist::MODPROBE_FILE), e))?;
        }
        Ok(())
    }

    /// Writes `key` = `value` for a peer: bounds, then the checks against the live kernel
    /// (refusals are not journaled: nothing was attempted), then journal, write, read back,
    /// persist.
    pub fn set(
        &self,
        key: SysctlKey,
        value: u64,
        persist: bool,
        who: &Requester,
    ) -> Result<SysctlChange, HelperError> {
        check_bounds(key, value)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.refuse_harm(key, value)?;
        let origin = Origin {
            actor: Some(who.actor.clone()),
            requested_by: Some(who.requested_by),
            peer_uid: Some(who.peer_uid),
        };
        let change = self.apply(key, value, persist, &origin, "")?;
        tracing::info!(%key, previous = change.previous, value = change.value, persist, actor = %who.actor, "sysctl set");
        Ok(change)
    }

    /// Puts the watched namespace's persisted keys (`netns.conf`) back in that namespace, each
    /// journaled as the helper's own write. Called once at start, after the journal's start
    /// record; failures are journaled and logged, the helper still starts. Nothing to do without
    /// `--netns`: sysctl.d already applied the host's own namespace at boot.
    pub fn reapply_watched_namespace(&self) -> Reapplied {
        let mut report = Reapplied::default();
        let Some(watched) = &self.watched_netns else {
            return report;
        };
        let values = match persist::read_netns(&self.state) {
            Ok(Some(saved)) if &saved.netns == watched => saved.values,
            Ok(Some(saved)) => {
                // Saved while another namespace was watched: not this one's settings.
                tracing::warn!(saved_for = %saved.netns, netns = %watched, "netns.conf names another namespace; nothing re-applied");
                return report;
            }
            Ok(None) => return report,
            Err(error) => {
                tracing::error!(%error, netns = %watched, "cannot read the watched namespace's settings");
                return report;
            }
        };
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let origin = Origin {
            actor: None,
            requested_by: None,
            peer_uid: None,
        };
        let note = format!(" (re-applied in namespace {watched} at start)");
        for (key, value) in values {
            // A key that is no longer per-namespace or no longer within bounds is journaled as
            // refused rather than written.
            let checked = if key.scope() == SysctlScope::PerNamespace {
                check_bounds(key, value)
            } else {
                Err(HelperError::SysctlRefused {
                    key,
                    value,
                    detail: "not a per-namespace key".into(),
                })
            };
            let result = match checked {
                Ok(()) => self.apply(key, value, false, &origin, &note),
                Err(error) => self
                    .journal_refusal(key, value, &origin, &error)
                    .and(Err(error)),
            };
            match result {
                Ok(change) => {
                    tracing::info!(%key, previous = change.previous, value, netns = %watched, "sysctl re-applied at start");
                    report.applied.push((key, value));
                }
                Err(error) => {
                    tracing::error!(%key, value, %error, netns = %watched, "sysctl not re-applied at start");
                    report.failed.push((key, error));
                }
            }
        }
        report
    }

    fn intent(
        &self,
        key: SysctlKey,
        value: u64,
        persist: bool,
        origin: &Origin,
    ) -> Result<JournalRef, HelperError> {
        Ok(self.journal.append(&JournalEvent::Intent {
            action: JournalAction::SetSysctl {
                key,
                value,
                persist,
            },
            actor: origin.actor.clone(),
            requested_by: origin.requested_by,
            peer_uid: origin.peer_uid,
        })?)
    }

    /// An intent and its failed outcome for a write the helper decided not to make.
    fn journal_refusal(
        &self,
        key: SysctlKey,
        value: u64,
        origin: &Origin,
        error: &HelperError,
    ) -> Result<(), HelperError> {
        let intent = self.intent(key, value, false, origin)?;
        self.journal.append(&JournalEvent::Outcome {
            intent_seq: intent.seq,
            ok: false,
            detail: error.to_string(),
        })?;
        Ok(())
    }

    /// Journal intent, write, read back, persist, journal outcome. The caller holds the lock and
    /// has checked the value. `note` ends the outcome's detail.
    fn apply(
        &self,
        key: SysctlKey,
        value: u64,
        persist: bool,
        origin: &Origin,
        note: &str,
    ) -> Result<SysctlChange, HelperError> {
        let journal = self.intent(key, value, persist, origin)?;
        let outcome = |ok: bool, detail: String| {
            self.journal.append(&JournalEvent::Outcome {
                intent_seq: journal.seq,
                ok,
                detail,
            })
        };
        let (previous, read_back) = match self.write(key, value) {
            Ok(values) => values,
            Err(error) => {
                let _ = outcome(false, error.to_string());
                return Err(error);
            }
        };
        // The kernel may keep a rounded value (buckets): that is the write succeeding, and the
        // value kept is what is answered, persisted and journaled.
        let kept = rounding::kernel_keeps(key, value, self.buckets_per_page);
        if read_back != value && read_back != kept {
            let error = HelperError::SysctlReadBack {
                key,
                written: value,
                read: read_back,
            };
            let _ = outcome(false, error.to_string());
            return Err(error);
        }
        if persist && let Err((path, error)) = self.persist(key, read_back) {
            let error = HelperError::PersistFailed {
                path: path.display().to_string(),
                detail: error.to_string(),
            };
            let _ = outcome(
                false,
                format!("{key} = {read_back} applied, not persisted: {error}"),
            );
            return Err(error);
        }
        let rounded = if read_back == value {
            String::new()
        } else {
            format!(
                " ({value} rounded up by the kernel to a multiple of {})",
                self.buckets_per_page
            )
        };
        outcome(
            true,
            format!("{key}: {previous} -> {read_back}{rounded}{note}"),
        )?;
        Ok(SysctlChange {
            previous,
            value: read_back,
            persisted: persist,
            journal,
        })
    }
}

fn check_bounds(key: SysctlKey, value: u64) -> Result<(), HelperError> {
    key.check(value)
        .map_err(|bounds| HelperError::SysctlOutOfBounds {
            key,
            value,
            min: bounds.min,
            max: bounds.max,
        })
}

#[cfg(test)]
mod tests {
    //! The checks and files of `Sysctls` over a fixture /proc tree (a plain file keeps what is
    //! written; the kernel's rounding is tested against the kernel in helper/tests/sysctl.rs).

    use super::*;

    struct Fixture {
        sysctls: Sysctls,
        proc: tempfile::TempDir,
        state: Arc<StateDir>,
        _state_dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(watched_netns: Option<&str>) -> Self {
            let proc = tempfile::tempdir().expect("tempdir");
            let write = |relative: &str, text: &str| {
                let path = proc.path().join(relative);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, text).expect("write");
            };
            // 1 GiB of RAM; the kernel's neighbour defaults.
            write("meminfo", "MemTotal:        1048576 kB\nMemFree: 0 kB\n");
            for (key, value) in [
                (SysctlKey::NfConntrackMax, 65_536),
                (SysctlKey::NfConntrackBuckets, 65_536),
                (SysctlKey::NeighGcThresh1, 128),
                (SysctlKey::NeighGcThresh2, 512),
                (SysctlKey::NeighGcThresh3, 1_024),
                (SysctlKey::TcpTimeoutCloseWait, 60),
            ] {
                write(&format!("sys/{}", key.proc_path()), &format!("{value}\n"));
            }
            let state_dir = tempfile::tempdir().expect("tempdir");
            let state = Arc::new(StateDir::open(&state_dir.path().join("state")).expect("state"));
            let journal = Arc::new(Journal::open(&state).expect("journal"));
            let sysctls = Sysctls::new(proc.path().join("sys"), None, Arc::clone(&state), journal)
                .watching(watched_netns.map(str::to_owned));
            Self {
                sysctls,
                proc,
                state,
                _state_dir: state_dir,
            }
        }

        fn value(&self, key: SysctlKey) -> u64 {
            read_value(&self.proc.path().join("sys").join(key.proc_path()), key).expect("reads")
        }

        fn set(
            &self,
            key: SysctlKey,
            value: u64,
            persist: bool,
        ) -> Result<SysctlChange, HelperError> {
            let who = Requester {
                actor: ShortText::new("alice").expect("text"),
                requested_by: "192.0.2.200".parse().expect("addr"),
                peer_uid: 0,
            };
            self.sysctls.set(key, value, persist, &who)
        }
    }

    #[test]
    fn neighbour_thresholds_keep_their_order_against_the_live_values() {
        let f = Fixture::new(None);
        let refused = f
            .set(SysctlKey::NeighGcThresh1, 600, false)
            .expect_err("refused");
        assert!(
            matches!(
                refused,
                HelperError::NeighThresholdOrder {
                    other: SysctlKey::NeighGcThresh2,
                    other_value: 512,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(f.value(SysctlKey::NeighGcThresh1), 128, "nothing written");
        let refused = f
            .set(SysctlKey::NeighGcThresh3, 1_024 - 1, false)
            .expect_err("refused");
        assert!(matches!(
            refused,
            HelperError::SysctlOutOfBounds { min: 1_024, .. }
        ));
        // Raising the cap first makes room for the soft limit.
        f.set(SysctlKey::NeighGcThresh3, 4_096, false)
            .expect("in order");
        f.set(SysctlKey::NeighGcThresh2, 2_048, false)
            .expect("in order");
        let refused = f
            .set(SysctlKey::NeighGcThresh3, 2_047, false)
            .expect_err("refused");
        assert!(matches!(
            refused,
            HelperError::NeighThresholdOrder {
                other: SysctlKey::NeighGcThresh2,
                ..
            }
        ));
        assert_eq!(f.value(SysctlKey::NeighGcThresh3), 4_096);
    }

    #[test]
    fn a_limit_past_a_quarter_of_ram_is_refused_and_not_written() {
        let f = Fixture::new(None);
        // No slabinfo in the fixture: 256 + 128 B per entry; a quarter of 1 GiB holds ~700k.
        let refused = f
            .set(SysctlKey::NfConntrackMax, 1_000_000, false)
            .expect_err("refused");
        assert!(
            matches!(
                refused,
                HelperError::ConntrackTableTooLarge {
                    entry_bytes: 384,
                    share_percent: 25,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(f.value(SysctlKey::NfConntrackMax), 65_536);
        f.set(SysctlKey::NfConntrackMax, 262_144, false)
            .expect("fits");
        assert_eq!(f.value(SysctlKey::NfConntrackMax), 262_144);
    }

    #[test]
    fn a_watched_namespace_keeps_its_keys_out_of_the_boot_file_and_gets_them_back_at_start() {
        let f = Fixture::new(Some("guests"));
        let key = SysctlKey::TcpTimeoutCloseWait;
        // kube-proxy's value.
        let change = f.set(key, 3_600, true).expect("sets");
        assert_eq!(change.value, 3_600);
        assert!(f.state.read(persist::SYSCTL_FILE).expect("reads").is_none());
        let saved = persist::read_netns(&f.state)
            .expect("reads")
            .expect("saved");
        assert_eq!(saved.netns, "guests");
        assert_eq!(saved.values.get(&key), Some(&3_600));
        let reading = f.sysctls.read_all().expect("reads");
        let reading = reading.iter().find(|r| r.key == key).expect("listed");
        assert_eq!(reading.persisted, Some(3_600));
        // A global key still goes to the boot file: it belongs to the host.
        f.set(SysctlKey::NeighGcThresh3, 2_048, true).expect("sets");
        let boot = persist::read(&f.state).expect("reads");
        assert_eq!(boot.get(&SysctlKey::NeighGcThresh3), Some(&2_048));
        assert_eq!(boot.get(&key), None);

        // Changed behind the helper's back; a new helper puts it back, journaled.
        std::fs::write(f.proc.path().join("sys").join(key.proc_path()), "60\n").expect("write");
        let elsewhere = Sysctls::new(
            f.proc.path().join("sys"),
            None,
            Arc::clone(&f.state),
            Arc::clone(&f.sysctls.journal),
        )
        .watching(Some("other".into()));
        assert_eq!(elsewhere.reapply_watched_namespace(), Reapplied::default());
        assert_eq!(f.value(key), 60, "not another namespace's settings");
        let report = f.sysctls.reapply_watched_namespace();
        assert_eq!(report.applied, vec![(key, 3_600)]);
        assert!(report.failed.is_empty());
        assert_eq!(f.value(key), 3_600);
        let records = f
            .sysctls
            .journal
            .page(ctguard_protocol::JournalPage {
                from: 0,
                limit: 100,
            })
            .expect("reads")
            .0;
        let last = records.last().expect("records");
        assert!(
            matches!(&last.event, JournalEvent::Outcome { ok: true, detail, .. } if detail.contains("re-applied in namespace guests")),
            "{last:?}"
        );
    }
}
