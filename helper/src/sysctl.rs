//! SetSysctl and ReadSysctls: allowlisted keys within their bounds, journaled, written where they
//! live, read back.
//! Per-namespace keys are written in the watched namespace (where the process is); global keys
//! only from the initial namespace, by a short-lived thread that enters it through the
//! descriptor opened before the helper left it (setns moves only the calling thread).

pub mod persist;

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use ctguard_protocol::{
    HelperError, JournalAction, JournalEvent, SysctlKey, SysctlReading, SysctlScope,
};
use nix::sched::{CloneFlags, setns};

use crate::{blocks::Requester, journal::Journal, state_dir::StateDir};

/// The result of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlChange {
    pub previous: u64,
    pub value: u64,
    pub persisted: bool,
    pub journal_seq: u64,
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
    /// One write at a time: read, write and read back must not interleave.
    lock: Mutex<()>,
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
            lock: Mutex::new(()),
        }
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
                Ok(SysctlReading {
                    key,
                    value,
                    persisted: persisted.get(&key).copied(),
                })
            })
            .collect()
    }

    fn persist(&self, key: SysctlKey, value: u64) -> Result<(), (PathBuf, std::io::Error)> {
        let at = |name| self.state.display_path(name);
        persist::persist(&self.state, key, value).map_err(|e| (at(persist::SYSCTL_FILE), e))?;
        if key == SysctlKey::NfConntrackBuckets {
            persist::persist_hashsize(&self.state, value)
                .map_err(|e| (at(persist::MODPROBE_FILE), e))?;
        }
        Ok(())
    }

    pub fn set(
        &self,
        key: SysctlKey,
        value: u64,
        persist: bool,
        who: &Requester,
    ) -> Result<SysctlChange, HelperError> {
        if let Err(bounds) = key.check(value) {
            return Err(HelperError::SysctlOutOfBounds {
                key,
                value,
                min: bounds.min,
                max: bounds.max,
            });
        }
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let journal_seq = self.journal.append(&JournalEvent::Intent {
            action: JournalAction::SetSysctl {
                key,
                value,
                persist,
            },
            actor: Some(who.actor.clone()),
            requested_by: Some(who.requested_by),
            peer_uid: Some(who.peer_uid),
        })?;
        let outcome = |ok: bool, detail: String| {
            self.journal.append(&JournalEvent::Outcome {
                intent_seq: journal_seq,
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
        if read_back != value {
            let error = HelperError::SysctlReadBack {
                key,
                written: value,
                read: read_back,
            };
            let _ = outcome(false, error.to_string());
            return Err(error);
        }
        if persist && let Err((path, error)) = self.persist(key, value) {
            let error = HelperError::PersistFailed {
                path: path.display().to_string(),
                detail: error.to_string(),
            };
            let _ = outcome(
                false,
                format!("{key} = {value} applied, not persisted: {error}"),
            );
            return Err(error);
        }
        outcome(true, format!("{key}: {previous} -> {value}"))?;
        tracing::info!(%key, previous, value, persist, actor = %who.actor, "sysctl set");
        Ok(SysctlChange {
            previous,
            value,
            persisted: persist,
            journal_seq,
        })
    }
}
