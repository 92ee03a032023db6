//! Who may talk to the helper: the peer's uid as the kernel reports it (`SO_PEERCRED`), never
//! anything the peer says about itself.

use std::collections::BTreeSet;

use ctguard_protocol::HelperError;
use nix::unistd::User;

#[derive(Debug, thiserror::Error)]
pub enum PeerPolicyError {
    #[error("no such user {0:?}")]
    UnknownUser(String),
    #[error("cannot look up user {name:?}: {source}")]
    Lookup { name: String, source: nix::Error },
}

/// The set of uids allowed to connect. Root is always in it: it could reach the kernel without us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    allowed_uids: BTreeSet<u32>,
}

/// What the kernel tells us about a connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIdentity {
    pub uid: u32,
    pub gid: u32,
}

impl PeerPolicy {
    pub fn resolve(uids: Vec<u32>, user_names: &[String]) -> Result<Self, PeerPolicyError> {
        let mut allowed_uids: BTreeSet<u32> = uids.into_iter().collect();
        allowed_uids.insert(0);
        for name in user_names {
            let user = User::from_name(name)
                .map_err(|source| PeerPolicyError::Lookup {
                    name: name.clone(),
                    source,
                })?
                .ok_or_else(|| PeerPolicyError::UnknownUser(name.clone()))?;
            allowed_uids.insert(user.uid.as_raw());
        }
        Ok(Self { allowed_uids })
    }

    pub fn check(&self, peer: PeerIdentity) -> Result<(), HelperError> {
        if self.allowed_uids.contains(&peer.uid) {
            Ok(())
        } else {
            Err(HelperError::PeerNotAllowed {
                uid: peer.uid,
                gid: peer.gid,
            })
        }
    }

    pub fn allowed_uids(&self) -> impl Iterator<Item = u32> + '_ {
        self.allowed_uids.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_uids_and_root_pass() {
        let policy = PeerPolicy::resolve(vec![998], &[]).expect("resolves");
        assert!(policy.check(PeerIdentity { uid: 998, gid: 5 }).is_ok());
        assert!(policy.check(PeerIdentity { uid: 0, gid: 0 }).is_ok());
        assert_eq!(
            policy.check(PeerIdentity {
                uid: 65_534,
                gid: 998
            }),
            Err(HelperError::PeerNotAllowed {
                uid: 65_534,
                gid: 998
            }),
            "a matching group alone does not let a peer in"
        );
    }

    #[test]
    fn users_are_resolved_by_name_and_unknown_names_fail_at_start() {
        let policy = PeerPolicy::resolve(vec![], &["root".to_owned()]).expect("root exists");
        assert_eq!(policy.allowed_uids().collect::<Vec<_>>(), vec![0]);
        assert!(matches!(
            PeerPolicy::resolve(vec![], &["no-such-user-ctguard".to_owned()]),
            Err(PeerPolicyError::UnknownUser(_))
        ));
    }
}
