//! The `nft` binary, run with an explicit argument vector (no shell): a script on stdin, or a
//! JSON listing on stdout.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use super::{
    Firewall, FirewallError,
    ruleset::{self, Element, Observed, TABLE},
};

/// The real firewall of the namespace the helper runs in.
#[derive(Debug, Clone)]
pub struct Nft {
    program: String,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            program: "nft".into(),
        }
    }
}

impl Firewall for Nft {
    fn apply(&self, elements: &[Element]) -> Result<(), FirewallError> {
        let script = ruleset::script(elements);
        let mut child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(FirewallError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(FirewallError::Spawn)?;
        }
        let output = child.wait_with_output().map_err(FirewallError::Spawn)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Refused(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ))
        }
    }

    fn observe(&self) -> Result<Option<Observed>, FirewallError> {
        let output = Command::new(&self.program)
            .args(["-j", "list", "table", "inet", TABLE])
            .stdin(Stdio::null())
            .output()
            .map_err(FirewallError::Spawn)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FirewallError::Refused(stderr.trim().to_owned()));
        }
        let observed = Observed::parse(&String::from_utf8_lossy(&output.stdout))
            .map_err(FirewallError::Output)?;
        Ok(Some(observed))
    }
}
