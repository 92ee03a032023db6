//! The server's implementation of the Users page: every account change is previewed from the live
//! state, confirmed with a single-use token, applied, and audited with the admin who made it (the
//! refusals too). Disabling a user or changing their role ends their sessions. Sessions are
//! counted and listed only while they could still be used (expired logins are swept first).

use std::sync::Arc;

use ctguard_app::{
    admin::users::{
        Account, SessionInfo, UserChange,
        ssr::{AccountAdmin, AdminError},
    },
    auth::{CurrentUser, Role},
    confirm::Preview,
};

use crate::{
    audit::{AuditEvent, AuditStore, Finished, Outcome},
    auth::{SessionPolicy, new_password::acceptable},
    clock::SharedClock,
    confirmation::{Change, Confirmations, Plan},
    domain::Username,
    hashing::PasswordHasher,
    logins::{EndReason, LoginStore},
    requester::{Requester, outcome_of, requester},
    users::{UserError, UserStore},
};

#[derive(Debug, Clone)]
pub struct AccountAdministration {
    pub users: UserStore,
    pub logins: LoginStore,
    pub hasher: PasswordHasher,
    pub audit: AuditStore,
    pub clock: SharedClock,
    pub confirmations: Arc<Confirmations>,
    /// Which logins still count as sessions.
    pub policy: SessionPolicy,
}

fn internal(error: impl std::fmt::Display) -> AdminError {
    tracing::error!(%error, "account administration failed");
    AdminError::Internal
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

fn from_user_error(error: UserError) -> AdminError {
    match error {
        UserError::Exists(name) => invalid(format!("User {name} already exists.")),
        UserError::NotFound(name) => invalid(format!("There is no user {name}.")),
        UserError::Db(error) => internal(error),
    }
}

fn parse_username(text: &str) -> Result<Username, AdminError> {
    Username::parse(text).map_err(|e| invalid(format!("{e}.")))
}

/// What a confirmed user change holds while it is checked and carried out: the account, or the
/// session it ends.
fn target_of(change: &UserChange) -> String {
    match change {
        UserChange::Add { username, .. }
        | UserChange::SetRole { username, .. }
        | UserChange::SetDisabled { username, .. } => {
            format!("account {}", username.trim().to_ascii_lowercase())
        }
        UserChange::EndSession { session_id } => format!("session {session_id}"),
    }
}

fn sessions_line(count: usize) -> String {
    match count {
        0 => "no session to end".to_owned(),
        1 => "1 session ends now".to_owned(),
        n => format!("{n} sessions end now"),
    }
}

impl AccountAdministration {
    async fn active_sessions_of(&self, user_id: i64) -> Result<usize, AdminError> {
        Ok(self
            .logins
            .all_live(self.clock.now(), &self.policy)
            .await
            .map_err(internal)?
            .iter()
            .filter(|login| login.user_id == user_id)
            .count())
    }

    /// Validates a change and describes it from the current state.
    async fn plan(&self, me: &CurrentUser, change: &UserChange) -> Result<Plan, AdminError> {
        match change {
            UserChange::Add {
                username,
                password,
                role,
            } => {
                let name = parse_username(username)?;
                acceptable(password.clone()).map_err(|e| invalid(format!("{e}.")))?;
                if self
                    .users
                    .find(name.as_str())
                    .await
                    .map_err(from_user_error)?
                    .is_some()
                {
                    return Err(invalid(format!("User {name} already exists.")));
                }
                let mut warnings = Vec::new();
                if *role == Role::Admin {
                    warnings.push(format!("{name} will be able to manage users."));
                }
                Ok(Plan {
                    title: format!("Add {name}"),
                    changes: vec![format!("new account {name} with role {role}")],
                    warnings,
                    fingerprint: "absent".into(),
                })
            }
            UserChange::SetRole { username, role } => {
                let name = parse_username(username)?;
                let user = self.users.get(&name).await.map_err(from_user_error)?;
                if user.role() == *role {
                    return Err(invalid(format!("{name} is already {role}.")));
                }
                if me.username == name.as_str() && *role < me.role {
                    return Err(invalid(
                        "You cannot lower your own role; ask another admin.",
                    ));
                }
                let sessions = self.active_sessions_of(user.id).await?;
                Ok(Plan {
                    title: format!("Change the role of {name}"),
                    changes: vec![
                        format!("role: {} → {role}", user.role()),
                        sessions_line(sessions),
                    ],
                    warnings: Vec::new(),
                    fingerprint: format!("{}/{}", user.role(), user.disabled),
                })
            }
            UserChange::SetDisabled { username, disabled } => {
                let name = parse_username(username)?;
                let user = self.users.get(&name).await.map_err(from_user_error)?;
                if user.disabled == *disabled {
                    return Err(invalid(format!(
                        "{name} is already {}.",
                        if *disabled { "disabled" } else { "enabled" }
                    )));
                }
                if *disabled && me.username == name.as_str() {
                    return Err(invalid("You cannot disable yourself."));
                }
                let sessions = self.active_sessions_of(user.id).await?;
                let mut changes = vec![if *disabled {
                    "state: active → disabled".to_owned()
                } else {
                    "state: disabled → active".to_owned()
                }];
                if *disabled {
                    changes.push(sessions_line(sessions));
                }
                Ok(Plan {
                    title: format!("{} {name}", if *disabled { "Disable" } else { "Enable" }),
                    changes,
                    warnings: Vec::new(),
                    fingerprint: format!("{}/{}", user.role(), user.disabled),
                })
            }
            UserChange::EndSession { session_id } => {
                let login = self
                    .logins
                    .all_live(self.clock.now(), &self.policy)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .find(|login| &login.id == session_id)
                    .ok_or_else(|| invalid("That session has already ended."))?;
                let mut warnings = Vec::new();
                if login.username == me.username {
                    warnings.push("This is one of your own sessions.".to_owned());
                }
                Ok(Plan {
                    title: format!("End a session of {}", login.username),
                    changes: vec![format!(
                        "the session from {} ({}) ends now",
                        login.client_addr, login.user_agent
                    )],
                    warnings,
                    fingerprint: "active".into(),
                })
            }
        }
    }

    async fn execute(&self, change: &UserChange) -> Result<(), AdminError> {
        let now = self.clock.now();
        match change {
            UserChange::Add {
                username,
                password,
                role,
            } => {
                let name = parse_username(username)?;
                let password =
                    acceptable(password.clone()).map_err(|e| invalid(format!("{e}.")))?;
                let hash = self.hasher.hash(&password).await.map_err(internal)?;
                self.users
                    .create(&name, &hash, *role, now)
                    .await
                    .map_err(from_user_error)?;
            }
            UserChange::SetRole { username, role } => {
                let name = parse_username(username)?;
                self.users
                    .set_role(&name, *role, now)
                    .await
                    .map_err(from_user_error)?;
                self.end_sessions_of(&name).await?;
            }
            UserChange::SetDisabled { username, disabled } => {
                let name = parse_username(username)?;
                self.users
                    .set_disabled(&name, *disabled, now)
                    .await
                    .map_err(from_user_error)?;
                if *disabled {
                    self.end_sessions_of(&name).await?;
                }
            }
            UserChange::EndSession { session_id } => {
                if !self
                    .logins
                    .end(session_id, now, EndReason::EndedByAdmin)
                    .await
                    .map_err(internal)?
                {
                    return Err(invalid("That session has already ended."));
                }
            }
        }
        Ok(())
    }

    async fn end_sessions_of(&self, username: &Username) -> Result<u64, AdminError> {
        let user = self.users.get(username).await.map_err(from_user_error)?;
        self.logins
            .end_all_of(user.id, self.clock.now(), EndReason::UserChanged)
            .await
            .map_err(internal)
    }

    async fn audit(
        &self,
        who: &Requester,
        change: &UserChange,
        outcome: Outcome,
        detail: &str,
        preview: Option<&str>,
    ) -> Result<(), AdminError> {
        let target = audit_target(change);
        let mut event = AuditEvent::by(&who.user, &who.client, change.action(), outcome)
            .target(&target)
            .detail(detail);
        event.preview = preview;
        self.audit
            .record(self.clock.now(), event)
            .await
            .map_err(internal)
    }
}

/// What the audit log names as the target: the username, or a prefix of a session id (enough to
/// correlate, useless to replay).
fn audit_target(change: &UserChange) -> String {
    match change {
        UserChange::Add { username, .. }
        | UserChange::SetRole { username, .. }
        | UserChange::SetDisabled { username, .. } => username.trim().to_ascii_lowercase(),
        UserChange::EndSession { session_id } => session_id.chars().take(8).collect(),
    }
}

#[async_trait::async_trait]
impl AccountAdmin for AccountAdministration {
    async fn list(&self) -> Result<Vec<Account>, AdminError> {
        let users = self.users.list().await.map_err(from_user_error)?;
        let logins = self
            .logins
            .all_live(self.clock.now(), &self.policy)
            .await
            .map_err(internal)?;
        Ok(users
            .into_iter()
            .map(|user| Account {
                sessions: logins
                    .iter()
                    .filter(|login| login.user_id == user.id)
                    .map(|login| SessionInfo {
                        id: login.id.clone(),
                        client_addr: login.client_addr.clone(),
                        user_agent: login.user_agent.clone(),
                        created_at: login.created_at,
                        last_seen: login.last_seen,
                    })
                    .collect(),
                role: user.role(),
                username: user.username,
                disabled: user.disabled,
                created_at: user.created_at,
            })
            .collect())
    }

    async fn preview(&self, change: UserChange) -> Result<Preview, AdminError> {
        let who = requester().await?;
        let plan = match self.plan(&who.user, &change).await {
            Ok(plan) => plan,
            Err(error) => {
                self.audit(&who, &change, outcome_of(&error), &error.to_string(), None)
                    .await?;
                return Err(error);
            }
        };
        Ok(self.confirmations.preview(
            &who.login.0,
            Change {
                action: change.action(),
                args: &change,
            },
            plan,
        ))
    }

    async fn apply(&self, token: String, change: UserChange) -> Result<(), AdminError> {
        let who = requester().await?;
        // Held from the re-plan to the audit: two previews of one account's state cannot both be
        // carried out (the second waits, then finds the state changed).
        let _held = self.confirmations.hold(&target_of(&change)).await;
        // Re-check against the state now: the same plan must come out, or the change is refused.
        let plan = match self.plan(&who.user, &change).await {
            Ok(plan) => plan,
            Err(error) => {
                // The token is spent either way.
                let _ = self.confirmations.redeem(
                    &token,
                    &who.login.0,
                    Change {
                        action: change.action(),
                        args: &change,
                    },
                    "",
                );
                self.audit(&who, &change, outcome_of(&error), &error.to_string(), None)
                    .await?;
                return Err(error);
            }
        };
        let summary = plan.summary();
        if let Err(refusal) = self.confirmations.redeem(
            &token,
            &who.login.0,
            Change {
                action: change.action(),
                args: &change,
            },
            &plan.fingerprint,
        ) {
            tracing::warn!(user = ?who.user.username, %refusal, "confirmation refused");
            self.audit(
                &who,
                &change,
                Outcome::Refused,
                &refusal.to_string(),
                Some(&summary),
            )
            .await?;
            return Err(invalid(refusal.to_string()));
        }
        // The attempt is on record before the account changes; without it nothing changes.
        let target = audit_target(&change);
        let event = AuditEvent::by(&who.user, &who.client, change.action(), Outcome::Pending)
            .target(&target)
            .detail("confirmed")
            .preview(&summary);
        let attempt = self
            .audit
            .begin(self.clock.now(), event)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot write the audit record; the account is not changed");
                AdminError::Unaudited(
                    "Nothing was changed: the audit log cannot be written. The server log has the details."
                        .to_owned(),
                )
            })?;
        let result = self.execute(&change).await;
        let (outcome, detail) = match &result {
            Ok(()) => (Outcome::Success, "confirmed".to_owned()),
            Err(error) => (outcome_of(error), error.to_string()),
        };
        let finished = Finished {
            outcome,
            detail: &detail,
            journal: None,
            arguments: None,
        };
        if let Err(error) = self.audit.finish(attempt, finished).await {
            tracing::error!(%error, action = change.action(), "cannot record the outcome of an account change");
        }
        result
    }
}
