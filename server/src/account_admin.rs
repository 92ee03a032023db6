//! The server's implementation of the Users page: account changes, each checked, applied, and
//! audited with the admin who made it. Disabling a user or changing their role ends their sessions.

use ctguard_app::{
    auth::{CurrentUser, Role},
    users::{
        Account, SessionInfo,
        ssr::{AccountAdmin, AdminError},
    },
};

use crate::{
    audit::{AuditEvent, AuditStore, Outcome},
    client::ClientInfo,
    clock::SharedClock,
    domain::{Password, Username},
    hashing::PasswordHasher,
    logins::{EndReason, LoginStore},
    users::{UserError, UserStore},
};

#[derive(Debug, Clone)]
pub struct AccountAdministration {
    pub users: UserStore,
    pub logins: LoginStore,
    pub hasher: PasswordHasher,
    pub audit: AuditStore,
    pub clock: SharedClock,
}

fn internal(error: impl std::fmt::Display) -> AdminError {
    tracing::error!(%error, "account administration failed");
    AdminError::Internal
}

fn from_user_error(error: UserError) -> AdminError {
    match error {
        UserError::Exists(name) => AdminError::Invalid(format!("User {name} already exists.")),
        UserError::NotFound(name) => AdminError::Invalid(format!("There is no user {name}.")),
        UserError::Db(error) => internal(error),
    }
}

/// Who is asking and from where, taken from the request the server function runs in.
async fn requester() -> Result<(CurrentUser, ClientInfo), AdminError> {
    let (axum::Extension(user), client) =
        leptos_axum::extract::<(axum::Extension<CurrentUser>, ClientInfo)>()
            .await
            .map_err(internal)?;
    Ok((user, client))
}

impl AccountAdministration {
    /// Writes the audit record of an attempt, whatever its outcome, then passes the result on.
    async fn audited<T>(
        &self,
        action: &str,
        target: &str,
        detail: &str,
        result: Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let (user, client) = requester().await?;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(AdminError::Invalid(_)) => Outcome::Refused,
            Err(AdminError::Internal) => Outcome::Failed,
        };
        let why = match &result {
            Err(error) => format!("{detail}: {error}"),
            Ok(_) => detail.to_owned(),
        };
        self.audit
            .record(
                self.clock.now(),
                AuditEvent::by(&user, &client, action, outcome)
                    .target(target)
                    .detail(&why),
            )
            .await
            .map_err(internal)?;
        result
    }

    async fn end_sessions_of(&self, username: &Username) -> Result<u64, AdminError> {
        let user = self.users.get(username).await.map_err(from_user_error)?;
        self.logins
            .end_all_of(user.id, self.clock.now(), EndReason::UserChanged)
            .await
            .map_err(internal)
    }
}

fn parse_username(text: &str) -> Result<Username, AdminError> {
    Username::parse(text).map_err(|e| AdminError::Invalid(format!("{e}.")))
}

#[async_trait::async_trait]
impl AccountAdmin for AccountAdministration {
    async fn list(&self) -> Result<Vec<Account>, AdminError> {
        let users = self.users.list().await.map_err(from_user_error)?;
        let logins = self.logins.all_active().await.map_err(internal)?;
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

    async fn add(&self, username: String, password: String, role: Role) -> Result<(), AdminError> {
        let result = async {
            let name = parse_username(&username)?;
            let password =
                Password::parse(password).map_err(|e| AdminError::Invalid(format!("{e}.")))?;
            let hash = self.hasher.hash(&password).await.map_err(internal)?;
            self.users
                .create(&name, &hash, role, self.clock.now())
                .await
                .map_err(from_user_error)?;
            Ok(())
        }
        .await;
        self.audited("user.add", &username, &format!("role {role}"), result)
            .await
    }

    async fn set_role(&self, username: String, role: Role) -> Result<(), AdminError> {
        let result = async {
            let name = parse_username(&username)?;
            let (me, _) = requester().await?;
            if me.username == name.as_str() && role < me.role {
                return Err(AdminError::Invalid(
                    "You cannot lower your own role; ask another admin.".into(),
                ));
            }
            self.users
                .set_role(&name, role, self.clock.now())
                .await
                .map_err(from_user_error)?;
            self.end_sessions_of(&name).await
        }
        .await;
        self.audited("user.role", &username, &format!("to {role}"), result)
            .await
            .map(drop)
    }

    async fn set_disabled(&self, username: String, disabled: bool) -> Result<(), AdminError> {
        let result = async {
            let name = parse_username(&username)?;
            let (me, _) = requester().await?;
            if disabled && me.username == name.as_str() {
                return Err(AdminError::Invalid("You cannot disable yourself.".into()));
            }
            self.users
                .set_disabled(&name, disabled, self.clock.now())
                .await
                .map_err(from_user_error)?;
            if disabled {
                self.end_sessions_of(&name).await?;
            }
            Ok(())
        }
        .await;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.audited(action, &username, "", result).await
    }

    async fn end_session(&self, session_id: String) -> Result<(), AdminError> {
        let result = async {
            let ended = self
                .logins
                .end(&session_id, self.clock.now(), EndReason::EndedByAdmin)
                .await
                .map_err(internal)?;
            if ended {
                Ok(())
            } else {
                Err(AdminError::Invalid(
                    "That session has already ended.".into(),
                ))
            }
        }
        .await;
        // Only a prefix of the id goes to the audit log: enough to correlate, useless to replay.
        let prefix: String = session_id.chars().take(8).collect();
        self.audited("session.end", &prefix, "", result).await
    }
}
