//! The day's per-minute history on disk, so it survives a restart: one small JSON file in the state
//! directory, replaced atomically (written beside, synced, renamed) once a minute and at shutdown.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use ctguard_app::{dashboard::history::MinutePoint, dashboard::ssr::SharedHistory};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

const FILE_NAME: &str = "history.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum HistoryStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a history file: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    version: u32,
    minutes: Vec<MinutePoint>,
}

/// The history file in a state directory.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    path: PathBuf,
}

impl HistoryStore {
    pub fn in_dir(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored minutes; none when there is no file yet.
    pub fn load(&self) -> Result<Vec<MinutePoint>, HistoryStoreError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io(source)),
        };
        let stored: Stored =
            serde_json::from_slice(&text).map_err(|source| HistoryStoreError::Format {
                path: self.path.clone(),
                source,
            })?;
        Ok(stored.minutes)
    }

    /// Replaces the file with these minutes; a reader sees the old file or the new one, never half.
    pub fn save(&self, minutes: Vec<MinutePoint>) -> Result<(), HistoryStoreError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| self.io(source))?;
        }
        let body = serde_json::to_vec(&Stored {
            version: FORMAT_VERSION,
            minutes,
        })
        .map_err(|source| HistoryStoreError::Format {
            path: self.path.clone(),
            source,
        })?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&body)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        };
        write().map_err(|source| self.io(source))
    }

    fn io(&self, source: std::io::Error) -> HistoryStoreError {
        HistoryStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Saves the history every `interval` until aborted. Failures are logged and retried next time:
    /// the live dashboard does not depend on the disk.
    pub fn spawn_saver(self, history: SharedHistory, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await; // the first tick is immediate; nothing new to save yet
            loop {
                ticker.tick().await;
                self.save_logged(&history).await;
            }
        })
    }

    /// One save off the async workers, logging a failure.
    pub async fn save_logged(&self, history: &SharedHistory) {
        let store = self.clone();
        let minutes = history.minutes();
        match tokio::task::spawn_blocking(move || store.save(minutes)).await {
            Ok(Ok(())) => tracing::debug!(path = %self.path.display(), "history saved"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot save the history"),
            Err(error) => tracing::warn!(%error, "history saver failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(at_ms: u64, count: u64) -> MinutePoint {
        MinutePoint {
            at_ms,
            count,
            max: 100,
        }
    }

    #[test]
    fn saved_minutes_load_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = HistoryStore::in_dir(&dir.path().join("state"));
        assert_eq!(store.load().expect("no file is empty"), vec![]);
        store
            .save(vec![minute(60_000, 1), minute(120_000, 2)])
            .expect("saves");
        store
            .save(vec![minute(60_000, 1), minute(120_000, 3)])
            .expect("replaces");
        assert_eq!(
            store.load().expect("loads"),
            vec![minute(60_000, 1), minute(120_000, 3)]
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .expect("dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("history.json")]);
    }

    #[test]
    fn a_garbled_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = HistoryStore::in_dir(dir.path());
        std::fs::write(store.path(), "not json").expect("write");
        let error = store.load().expect_err("garbled").to_string();
        assert!(error.contains("history.json"), "{error}");
    }
}
