//! The helper's configuration, parsed once at start into types that cannot hold bad values.

use std::{fmt, path::PathBuf, time::Duration};

use crate::{guard::Guardrails, peer::PeerPolicy};

#[derive(Debug, Clone)]
pub struct HelperConfig {
    pub socket: PathBuf,
    pub group: String,
    pub peers: PeerPolicy,
    pub netns: Option<NetnsName>,
    /// Blocks, journal and persisted settings: root's alone (`state_dir.rs`).
    pub state_dir: PathBuf,
    pub guard: Guardrails,
    /// The size past which the journal's active segment is sealed (`--journal-segment-bytes`).
    pub journal_segment_bytes: u64,
    pub reconcile_interval: Duration,
    pub client_limits: crate::connection::ClientLimits,
    /// Where the per-CPU statistics come from (`--stats-source`).
    pub stats_source: crate::kernel::StatsSource,
    /// The counting table of new flows (`--count-creators`, `--creator-set-size`,
    /// `--creator-sample-secs`).
    pub counting: crate::creators::CountingConfig,
}

/// A network namespace name as `ip netns` stores it under `/run/netns`: one path component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsName(String);

impl NetnsName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a namespace name (1-64 of A-Z a-z 0-9 - _ .)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_single_path_components() {
        assert!(NetnsName::parse("ctg-host").is_ok());
        assert!(NetnsName::parse("qrouter-1b2c.3_d").is_ok());
        for bad in ["", ".", "..", "../etc", "a/b", "a b", &"x".repeat(65)] {
            assert!(NetnsName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
