//! The helper's persistent state: the blocks it holds, in `<state-dir>/blocks.json`, written
//! atomically (temporary file, fsync, rename, fsync of the directory) so a crash leaves the old
//! file or the new one, never half of one; read and written only through the state directory's
//! handle (`state_dir.rs`), never through a symlink.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use ctguard_protocol::ActiveBlock;
use serde::{Deserialize, Serialize};

use crate::state_dir::StateDir;

/// The blocks file's name in the state directory.
pub const FILE_NAME: &str = "blocks.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a ctguard state file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    blocks: Vec<ActiveBlock>,
}

/// The blocks file.
#[derive(Debug, Clone)]
pub struct BlockStore {
    dir: Arc<StateDir>,
    path: PathBuf,
}

impl BlockStore {
    pub fn new(dir: Arc<StateDir>) -> Self {
        let path = dir.display_path(FILE_NAME);
        Self { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved blocks; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<ActiveBlock>, StateError> {
        let text = match self.dir.read(FILE_NAME) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: StateFile =
            serde_json::from_slice(&text).map_err(|source| StateError::Parse {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.blocks)
    }

    pub fn save(&self, blocks: &[ActiveBlock]) -> Result<(), StateError> {
        let body = serde_json::to_vec_pretty(&StateFile {
            blocks: blocks.to_vec(),
        })
        .map_err(|source| StateError::Parse {
            path: self.path.clone(),
            source,
        })?;
        self.dir
            .write_atomically(FILE_NAME, &body, 0o600)
            .map_err(|source| StateError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use ctguard_protocol::ShortText;

    use super::*;

    #[test]
    fn blocks_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(&dir.path().join("state")).expect("state dir");
        let store = BlockStore::new(Arc::new(state));
        assert!(store.load().expect("loads").is_empty());
        let block = ActiveBlock {
            target: "udp from 50.2.6.12 sport 53".parse().expect("target"),
            reason: ShortText::new("DNS reflection").expect("text"),
            actor: ShortText::new("alice").expect("text"),
            requested_by: "198.51.100.5".parse().expect("addr"),
            created_unix: 1,
            expires_unix: 2,
            journal_seq: 3,
            packets_dropped: None,
        };
        store.save(std::slice::from_ref(&block)).expect("saves");
        assert_eq!(store.load().expect("loads"), vec![block]);
        std::fs::write(store.path(), b"{\"blocks\":[],\"x\":1}").expect("writes");
        assert!(matches!(store.load(), Err(StateError::Parse { .. })));
    }
}
