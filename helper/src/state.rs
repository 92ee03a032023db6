//! The helper's persistent state: the blocks it holds, in `<state-dir>/blocks.json`, written
//! atomically (temporary file, fsync, rename, fsync of the directory) so a crash leaves the old
//! file or the new one, never half of one.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use ctguard_protocol::ActiveBlock;
use serde::{Deserialize, Serialize};

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
    path: PathBuf,
}

impl BlockStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("blocks.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved blocks; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<ActiveBlock>, StateError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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
        write_atomically(&self.path, &body, 0o600).map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Writes `body` to `path` so that readers (and a crash) see the old content or the new, whole.
pub fn write_atomically(path: &Path, body: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        // 0600 for the helper's own state; a world-readable file (sysctl.d) is chmod'ed by
        // its caller.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(body)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use ctguard_protocol::ShortText;

    use super::*;

    #[test]
    fn blocks_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlockStore::new(&dir.path().join("state"));
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
