//! Entering the network namespace the helper watches.

use std::{fs::File, path::PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::config::NetnsName;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setns into {path} failed: {source}")]
    Setns { path: PathBuf, source: nix::Error },
}

/// Moves the calling thread into the named namespace. Call it before any other thread exists: new
/// threads inherit the namespace of the thread that creates them.
pub fn enter(name: &NetnsName) -> Result<(), NetnsError> {
    let path = PathBuf::from("/run/netns").join(name.as_str());
    let file = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Setns { path, source })?;
    tracing::info!(netns = %name, "watching network namespace");
    Ok(())
}
