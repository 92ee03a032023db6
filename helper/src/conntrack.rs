//! Deleting a target's conntrack entries with conntrack-tools' `conntrack -D`, run with an
//! explicit argument vector (no shell). conntrack-tools is the reference ctnetlink client, takes
//! CIDR networks (`-s 192.0.2.0/24`) and filters in one dump-and-delete pass; a mutation runs at
//! human rates, so a process per call costs nothing that matters. (The read path, which must be
//! fast on millions of entries, is a different matter: see the snapshot work in ARCHITECTURE.md.)

use std::time::Duration;

use ctguard_protocol::{BlockTarget, Side};

use crate::child;

/// A deletion walks the whole table in the kernel: seconds at millions of entries. A block
/// holds its lock meanwhile, so the wait is bounded.
const CONNTRACK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error(transparent)]
    Run(#[from] child::ChildError),
    #[error("conntrack {args:?} failed: {stderr}")]
    Failed { args: Vec<String>, stderr: String },
}

/// What the block logic needs: delete a target's entries, returning how many went.
pub trait EntryDeleter: Send + Sync + std::fmt::Debug {
    fn delete(&self, target: &BlockTarget) -> Result<u64, ConntrackError>;
}

#[derive(Debug, Clone, Default)]
pub struct ConntrackTool;

impl EntryDeleter for ConntrackTool {
    /// Deletes in both directions (see [`delete_arguments`]). "Nothing to delete" is success.
    fn delete(&self, target: &BlockTarget) -> Result<u64, ConntrackError> {
        let mut deleted = 0;
        let program = child::system_binary("conntrack");
        for args in delete_arguments(target) {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let finished = child::run(
                &program,
                &argv,
                None,
                child::Stdout::Discard,
                CONNTRACK_TIMEOUT,
            )?;
            match deleted_count(&finished.stderr) {
                Some(count) => deleted += count,
                None => {
                    return Err(ConntrackError::Failed {
                        args,
                        stderr: finished.stderr,
                    });
                }
            }
        }
        Ok(deleted)
    }
}

/// The two `conntrack -D` invocations for a target: the flows it started (its network on the
/// target's side of the original tuple) and the flows started towards it (its network on the
/// other side, ports swapped accordingly).
///
/// Both use the original tuple because conntrack-tools 1.4.7 refuses CIDR networks for the reply
/// tuple (`CIDR notation unavailable for --reply-src`). Without NAT the reply tuple is the
/// original one reversed, so this is the same set of entries; a DNAT'd flow towards the target
/// whose original destination was another address is not found (the block drops its packets,
/// and it times out).
pub fn delete_arguments(target: &BlockTarget) -> Vec<Vec<String>> {
    let network = target.network().to_string();
    let family = if target.is_ipv4() { "ipv4" } else { "ipv6" };
    let flip = |side| match side {
        Side::Source => Side::Destination,
        Side::Destination => Side::Source,
    };
    [false, true]
        .into_iter()
        .map(|reversed| {
            let address_side = if reversed {
                flip(target.direction())
            } else {
                target.direction()
            };
            let mut args = vec![
                "-D".to_owned(),
                "-f".to_owned(),
                family.to_owned(),
                match address_side {
                    Side::Source => "--orig-src",
                    Side::Destination => "--orig-dst",
                }
                .to_owned(),
                network.clone(),
            ];
            if let Some(protocol) = target.protocol() {
                args.extend(["-p".to_owned(), protocol.as_str().to_owned()]);
            }
            if let Some(port) = target.port() {
                let side = if reversed {
                    flip(port.side())
                } else {
                    port.side()
                };
                let option = match side {
                    Side::Source => "--orig-port-src",
                    Side::Destination => "--orig-port-dst",
                };
                args.extend([option.to_owned(), port.port().to_string()]);
            }
            args
        })
        .collect()
}

/// `conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.`
fn deleted_count(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let (_, rest) = line.split_once("): ")?;
        rest.strip_suffix(" flow entries have been deleted.")?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_block_deletes_both_directions_with_the_port_on_the_right_side() {
        let target: BlockTarget = "udp from 50.2.6.12 sport 53".parse().expect("target");
        assert_eq!(
            delete_arguments(&target),
            vec![
                vec![
                    "-D",
                    "-f",
                    "ipv4",
                    "--orig-src",
                    "50.2.6.12/32",
                    "-p",
                    "udp",
                    "--orig-port-src",
                    "53"
                ],
                vec![
                    "-D",
                    "-f",
                    "ipv4",
                    "--orig-dst",
                    "50.2.6.12/32",
                    "-p",
                    "udp",
                    "--orig-port-dst",
                    "53"
                ],
            ]
        );
        let target: BlockTarget = "to 2001:db8::/48".parse().expect("target");
        assert_eq!(
            delete_arguments(&target)[1],
            vec!["-D", "-f", "ipv6", "--orig-src", "2001:db8::/48"]
        );
    }

    #[test]
    fn nothing_to_delete_is_zero_and_errors_are_not() {
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"
            ),
            Some(0)
        );
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been deleted.\n"
            ),
            Some(4)
        );
        assert_eq!(
            deleted_count("conntrack v1.4.7 (conntrack-tools): Operation not permitted\n"),
            None
        );
    }
}
