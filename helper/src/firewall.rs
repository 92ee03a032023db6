//! nftables: the helper's own `table inet ctguard`, whose chain drops blocked traffic at
//! prerouting priority raw (-300), before conntrack (-200) creates an entry for it.
//!
//! Access is through the `nft` binary, run with an explicit argument vector (`nft -f -` with
//! the script on stdin, `nft -j list table inet ctguard`), never a shell. Why not a netlink crate
//! (nlink 0.33, crates.md): it has one maintainer and many breaking minor releases in 2026, and
//! the nftables netlink messages for concatenated interval sets with per-element timeouts are
//! exactly the part where a young crate's bugs would hide; `nft` is the reference implementation
//! operators already trust and read. The scripts are generated only from validated types
//! (`IpNet`, `u16`, closed enums), so nothing a client sends reaches `nft` as text it chose.
//! The cost is one process per mutation (a few ms), fine at human rates.
//!
//! Every change rewrites the whole table in one atomic transaction from the helper's state
//! (`table inet ctguard; delete table inet ctguard; table inet ctguard { ... }`): there is no
//! partial update to go wrong, re-adding an element refreshes its timeout (which `add element`
//! alone would not), and the same code puts the table back after `nft flush ruleset`.

pub mod nft;
pub mod ruleset;
pub mod watch;

pub use ruleset::{Counter, Element, Observed};

/// What the block logic needs from the kernel's firewall; a trait so the logic is tested
/// without one.
pub trait Firewall: Send + Sync + std::fmt::Debug {
    /// Replaces `table inet ctguard` with one holding exactly `elements`, atomically.
    fn apply(&self, elements: &[Element]) -> Result<(), FirewallError>;
    /// What the kernel holds now: `None` when the table or its chain is missing.
    fn observe(&self) -> Result<Option<Observed>, FirewallError>;
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Run(#[from] crate::child::ChildError),
    #[error("nft failed: {0}")]
    Refused(String),
    #[error("cannot understand nft's output: {0}")]
    Output(String),
}
