//! Server-enforced confirmation: a change is previewed first, which issues a single-use token bound
//! to the session, the action, a digest of its arguments and a fingerprint of the state the preview
//! was computed from; only that token, presented once, before it expires, from the same session,
//! with the same arguments, over unchanged state, carries the change out. The check of that state
//! and the change are one step: a confirmation holds its target's lock from the re-plan to the end
//! of the change, so two previews of the same state cannot both be carried out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use ctguard_app::confirm::Preview;
use serde::Serialize;
use sha2::{Digest, Sha256};

use tokio::sync::OwnedMutexGuard;

use crate::clock::SharedClock;

/// A change checked against the live state: what it will do, in words, and the fingerprint of
/// the state it was computed from (which must still hold when it is confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub title: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
    pub fingerprint: String,
}

impl Plan {
    /// The plan in one line, for the audit record.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.title, self.changes.join("; "))
    }
}

/// How long a preview may be confirmed, unless the server is told otherwise
/// (`--confirmation-secs`).
pub const TOKEN_LIFETIME_SECS: i64 = 120;
/// Outstanding tokens beyond this are dropped, oldest first: a flood of previews cannot grow memory.
const MAX_OUTSTANDING: usize = 10_000;

/// Why a confirmation was refused. Each is audited; the words are safe to show the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    #[error("This confirmation is unknown or was already used. Preview the change again.")]
    UnknownOrUsed,
    #[error("This confirmation has expired. Preview the change again.")]
    Expired,
    #[error("This confirmation belongs to another session.")]
    OtherSession,
    #[error("This confirmation is for a different change.")]
    DifferentChange,
    #[error("The state changed since the preview. Preview the change again.")]
    StateChanged,
}

/// A change as the confirmation binds it: its name and its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a, A: Serialize> {
    pub action: &'a str,
    pub args: &'a A,
}

impl<A: Serialize> Change<'_, A> {
    fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.action.as_bytes());
        hasher.update([0]);
        // Serialising our own argument types cannot fail; an empty digest would still bind the action.
        hasher.update(serde_json::to_vec(self.args).unwrap_or_default());
        hasher.finalize().into()
    }
}

#[derive(Debug)]
struct Pending {
    login_id: String,
    change_digest: [u8; 32],
    state_fingerprint: String,
    expires_at: i64,
    issued_at: i64,
}

#[derive(Debug)]
pub struct Confirmations {
    clock: SharedClock,
    lifetime_secs: i64,
    /// Keyed by the token's SHA-256: the map never holds a usable token.
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    targets: TargetLocks,
}

/// One lock per target of a change (a block's target, the sysctls, an account), made when first
/// asked for and dropped when nobody holds or awaits it.
type TargetLocks = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// A target held for one confirmed change: others confirming a change of it wait, then re-plan
/// from the state this one left.
#[derive(Debug)]
pub struct TargetHeld {
    targets: TargetLocks,
    target: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for TargetHeld {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map's own reference left: nobody holds it or waits for it.
        if targets
            .get(&self.target)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            targets.remove(&self.target);
        }
    }
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Confirmations {
    pub fn new(clock: SharedClock, lifetime_secs: i64) -> Self {
        Self {
            clock,
            lifetime_secs,
            pending: Mutex::default(),
            targets: TargetLocks::default(),
        }
    }

    /// Waits for `target` and holds it until the returned guard is dropped: taken before a
    /// confirmed change is planned again, released after it was carried out and audited, so the
    /// state the re-plan checked is the state the change meets. The holder's helper calls have
    /// deadlines, so the wait is bounded by them.
    pub async fn hold(&self, target: &str) -> TargetHeld {
        let lock = {
            let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(targets.entry(target.to_owned()).or_default())
        };
        TargetHeld {
            targets: Arc::clone(&self.targets),
            target: target.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }

    /// What the person is asked to confirm: the plan in words and a token that redeems exactly
    /// this change, for this login, while the state still matches the plan's fingerprint.
    pub fn preview<A: Serialize>(
        &self,
        login_id: &str,
        change: Change<'_, A>,
        plan: Plan,
    ) -> Preview {
        let token = self.issue(login_id, change, plan.fingerprint);
        Preview {
            title: plan.title,
            changes: plan.changes,
            warnings: plan.warnings,
            token,
            expires_in_secs: u32::try_from(self.lifetime_secs).unwrap_or(u32::MAX),
        }
    }

    /// Issues a token for a previewed change. `state_fingerprint` describes the state the preview
    /// was computed from (e.g. the user's role and status): if it differs at confirmation, the
    /// change is refused.
    pub fn issue<A: Serialize>(
        &self,
        login_id: &str,
        change: Change<'_, A>,
        state_fingerprint: String,
    ) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = self.clock.now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.expires_at > now);
        if pending.len() >= MAX_OUTSTANDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.issued_at)
                .map(|(key, _)| *key)
        {
            pending.remove(&oldest);
        }
        pending.insert(
            token_key(&token),
            Pending {
                login_id: login_id.to_owned(),
                change_digest: change.digest(),
                state_fingerprint,
                expires_at: now + self.lifetime_secs,
                issued_at: now,
            },
        );
        token
    }

    /// Redeems a token: succeeds once. Whatever the outcome, the token is spent, so a refused
    /// attempt cannot be retried with other guesses.
    pub fn redeem<A: Serialize>(
        &self,
        token: &str,
        login_id: &str,
        change: Change<'_, A>,
        state_fingerprint: &str,
    ) -> Result<(), ConfirmError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token_key(token))
            .ok_or(ConfirmError::UnknownOrUsed)?;
        if pending.expires_at <= self.clock.now() {
            return Err(ConfirmError::Expired);
        }
        if pending.login_id != login_id {
            return Err(ConfirmError::OtherSession);
        }
        if pending.change_digest != change.digest() {
            return Err(ConfirmError::DifferentChange);
        }
        if pending.state_fingerprint != state_fingerprint {
            return Err(ConfirmError::StateChanged);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn setup() -> (Arc<ManualClock>, Confirmations) {
        let clock = ManualClock::starting_now();
        (
            clock.clone(),
            Confirmations::new(clock, TOKEN_LIFETIME_SECS),
        )
    }

    const DISABLE_VERA: Change<'static, (&str, bool)> = Change {
        action: "user.disable",
        args: &("vera", true),
    };

    #[test]
    fn a_token_confirms_its_change_once() {
        let (_, confirmations) = setup();
        let token = confirmations.issue("login-a", DISABLE_VERA, "active".into());
        assert_eq!(
            confirmations.redeem(&token, "login-a", DISABLE_VERA, "active"),
            Ok(())
        );
        assert_eq!(
            confirmations.redeem(&token, "login-a", DISABLE_VERA, "active"),
            Err(ConfirmError::UnknownOrUsed),
            "replayed"
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let (clock, confirmations) = setup();
        let token = confirmations.issue("login-a", DISABLE_VERA, "active".into());
        clock.advance(TOKEN_LIFETIME_SECS);
        assert_eq!(
            confirmations.redeem(&token, "login-a", DISABLE_VERA, "active"),
            Err(ConfirmError::Expired)
        );
    }

    #[test]
    fn tokens_are_bound_to_session_change_arguments_and_state() {
        let (_, confirmations) = setup();
        let other_user = Change {
            action: "user.disable",
            args: &("ada", true),
        };
        let other_action = Change {
            action: "user.enable",
            args: &("vera", true),
        };
        for (login, change, state, expected) in [
            (
                "login-b",
                DISABLE_VERA,
                "active",
                ConfirmError::OtherSession,
            ),
            (
                "login-a",
                other_user,
                "active",
                ConfirmError::DifferentChange,
            ),
            (
                "login-a",
                other_action,
                "active",
                ConfirmError::DifferentChange,
            ),
            (
                "login-a",
                DISABLE_VERA,
                "disabled",
                ConfirmError::StateChanged,
            ),
        ] {
            let token = confirmations.issue("login-a", DISABLE_VERA, "active".into());
            assert_eq!(
                confirmations.redeem(&token, login, change, state),
                Err(expected)
            );
            assert_eq!(
                confirmations.redeem(&token, "login-a", DISABLE_VERA, "active"),
                Err(ConfirmError::UnknownOrUsed),
                "a refused token is spent"
            );
        }
    }

    #[tokio::test]
    async fn a_held_target_makes_the_next_holder_wait_and_is_forgotten_when_free() {
        let (_, confirmations) = setup();
        let first = confirmations.hold("sysctls").await;
        let other = confirmations.hold("block 192.0.2.1/32").await;
        let waiting = confirmations.hold("sysctls");
        tokio::pin!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "the same target waits"
        );
        drop(first);
        let second = waiting.await;
        drop((second, other));
        assert!(
            confirmations
                .targets
                .lock()
                .is_ok_and(|targets| targets.is_empty())
        );
    }

    #[test]
    fn made_up_tokens_are_refused() {
        let (_, confirmations) = setup();
        assert_eq!(
            confirmations.redeem("00", "login-a", DISABLE_VERA, "active"),
            Err(ConfirmError::UnknownOrUsed)
        );
    }
}
