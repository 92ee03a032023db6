//! The helper's command line.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{HelperConfig, NetnsName};
use crate::peer::{PeerPolicy, PeerPolicyError};

/// The root helper of ctguard: answers the panel's requests about the conntrack table.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Where to listen. The directory is created if missing.
    #[arg(
        long,
        env = "CTGUARD_HELPER_SOCKET",
        default_value = "/run/ctguard/helper.sock"
    )]
    pub socket: PathBuf,

    /// Group that owns the socket (mode 0660): the group the server runs in.
    #[arg(long, env = "CTGUARD_HELPER_GROUP", default_value = "ctguard")]
    pub group: String,

    /// User ids allowed to talk to the helper, checked with SO_PEERCRED. Root is always allowed.
    #[arg(long = "allow-uid", value_delimiter = ',')]
    pub allow_uids: Vec<u32>,

    /// Users allowed by name (resolved once at start), e.g. `ctguard`.
    #[arg(long = "allow-user", value_delimiter = ',')]
    pub allow_users: Vec<String>,

    /// Watch the network namespace with this name (as `ip netns` names it) instead of our own.
    #[arg(long, env = "CTGUARD_HELPER_NETNS", value_parser = NetnsName::parse)]
    pub netns: Option<NetnsName>,
}

impl Cli {
    /// Resolves names to ids once, so a typo stops the helper at start instead of locking out the
    /// server later.
    pub fn into_config(self) -> Result<HelperConfig, PeerPolicyError> {
        Ok(HelperConfig {
            socket: self.socket,
            group: self.group,
            peers: PeerPolicy::resolve(self.allow_uids, &self.allow_users)?,
            netns: self.netns,
        })
    }
}
