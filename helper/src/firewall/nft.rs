//! The `nft` binary, run with an explicit argument vector (no shell): a script on stdin, or a
//! JSON listing on stdout.

use std::{path::PathBuf, time::Duration};

use super::{
    Firewall, FirewallError,
    ruleset::{self, Element, Observed, TABLE},
};
use crate::child;

/// Far beyond what loading or listing the table takes; a hung nft must not hold the blocks'
/// lock (and every change behind it) for longer.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// The real firewall of the namespace the helper runs in.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            program: child::system_binary("nft"),
        }
    }
}

impl Firewall for Nft {
    fn apply(&self, elements: &[Element]) -> Result<(), FirewallError> {
        let script = ruleset::script(elements);
        let finished = child::run(
            &self.program,
            &["-f", "-"],
            Some(script.as_bytes()),
            child::Stdout::Keep,
            NFT_TIMEOUT,
        )?;
        if finished.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Refused(finished.stderr))
        }
    }

    fn observe(&self) -> Result<Option<Observed>, FirewallError> {
        let finished = child::run(
            &self.program,
            &["-j", "list", "table", "inet", TABLE],
            None,
            child::Stdout::Keep,
            NFT_TIMEOUT,
        )?;
        if !finished.status.success() {
            if finished.stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FirewallError::Refused(finished.stderr));
        }
        let observed = Observed::parse(&String::from_utf8_lossy(&finished.stdout))
            .map_err(FirewallError::Output)?;
        Ok(Some(observed))
    }
}
