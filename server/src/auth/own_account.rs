//! The server's side of the account page: each user's own sessions, password and second factor.
//! Whose account it is comes from the session alone, never from the request's arguments; a session
//! of someone else is refused like one that does not exist. Every change and every refusal is
//! audited, and every change is recorded (as pending) before it is carried out: one whose record
//! cannot be written is not made.
//! Checking the current password counts towards the sign-in throttle: this is no side door for
//! guessing it.

use std::sync::Arc;

use ctguard_app::{
    account::{Enrolment, OwnAccount, OwnSession, ssr::OwnAccountService},
    admin::users::ssr::AdminError,
    auth::Role,
};

use crate::{
    audit::{Attempt, AuditEvent, AuditStore, Finished, Outcome},
    auth::{
        SessionPolicy,
        new_password::acceptable,
        second_factor::{SecondFactorError, SecondFactorStore},
        throttle::LoginThrottle,
    },
    clock::SharedClock,
    domain::Username,
    hashing::PasswordHasher,
    logins::{EndReason, LoginStore},
    requester::{Requester, outcome_of, requester},
    users::UserStore,
};

#[derive(Debug, Clone)]
pub struct OwnAccounts {
    pub users: UserStore,
    pub logins: LoginStore,
    pub hasher: PasswordHasher,
    /// The sign-in throttle, shared with the login form.
    pub throttle: Arc<LoginThrottle>,
    pub second_factors: SecondFactorStore,
    pub audit: AuditStore,
    pub clock: SharedClock,
    pub policy: SessionPolicy,
}

fn internal(error: impl std::fmt::Display) -> AdminError {
    tracing::error!(%error, "own account change failed");
    AdminError::Internal
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

impl OwnAccounts {
    fn required_for(&self, role: Role) -> bool {
        role == Role::Admin && self.policy.second_factor_for_admins
    }

    /// Writes one audit record of `who`'s own account; failing to is an error (fail closed).
    async fn record(
        &self,
        who: &Requester,
        action: &str,
        outcome: Outcome,
        detail: &str,
    ) -> Result<(), AdminError> {
        let event = AuditEvent::by(&who.user, &who.client, action, outcome)
            .target(&who.user.username)
            .detail(detail);
        self.audit
            .record(self.clock.now(), event)
            .await
            .map_err(internal)
    }

    /// Puts a change of `who`'s own account on record (pending) before it is made; a change that
    /// cannot be recorded is not made.
    async fn begin(&self, who: &Requester, action: &str) -> Result<Attempt, AdminError> {
        let event = AuditEvent::by(&who.user, &who.client, action, Outcome::Pending)
            .target(&who.user.username)
            .detail("under way");
        self.audit
            .begin(self.clock.now(), event)
            .await
            .map_err(|error| {
                tracing::error!(%error, action, "cannot write the audit record; nothing is changed");
                AdminError::Unaudited(
                    "Nothing was changed: the audit log cannot be written.".to_owned(),
                )
            })
    }

    /// Completes an attempt's record with how the change ended and hands the result back.
    async fn finish<T>(
        &self,
        attempt: Attempt,
        result: Result<T, AdminError>,
        done: &str,
    ) -> Result<T, AdminError> {
        let detail = match &result {
            Ok(_) => done.to_owned(),
            Err(error) => error.to_string(),
        };
        let finished = Finished {
            outcome: result
                .as_ref()
                .map_or_else(outcome_of, |_| Outcome::Success),
            detail: &detail,
            journal: None,
            arguments: None,
        };
        if let Err(error) = self.audit.finish(attempt, finished).await {
            tracing::error!(%error, "cannot record how an account change ended");
        }
        result
    }

    /// Audits a refusal (or failure) and hands the error back.
    async fn refuse<T>(
        &self,
        who: &Requester,
        action: &str,
        error: AdminError,
    ) -> Result<T, AdminError> {
        self.record(who, action, outcome_of(&error), &error.to_string())
            .await?;
        Err(error)
    }

    /// Checks the requester's current password, counted by the sign-in throttle like a sign-in
    /// from this address and browser.
    async fn check_password(&self, who: &Requester, password: &str) -> Result<(), AdminError> {
        let Ok(reservation) = self
            .throttle
            .reserve(&who.user.username, who.client.addr, None)
        else {
            return Err(AdminError::TooMany(
                "Too many wrong passwords. Wait a few minutes and try again.".into(),
            ));
        };
        let user = self
            .users
            .find(&who.user.username)
            .await
            .map_err(internal)?
            .ok_or(AdminError::Internal)?;
        if self
            .hasher
            .verify(password, Some(&user.password_hash))
            .await
            .map_err(internal)?
        {
            self.throttle.succeeded(reservation);
            Ok(())
        } else {
            Err(invalid("Your current password is not right."))
        }
    }
}

#[async_trait::async_trait]
impl OwnAccountService for OwnAccounts {
    async fn account(&self) -> Result<OwnAccount, AdminError> {
        let who = requester().await?;
        let now = self.clock.now();
        let logins = self
            .logins
            .live_of(who.user.id, now, &self.policy)
            .await
            .map_err(internal)?;
        let enrolment_due = logins
            .iter()
            .any(|login| login.id == who.login.0 && login.enrolment_due);
        let second_factor = self
            .second_factors
            .enrolled(who.user.id)
            .await
            .map_err(internal)?;
        let recovery_codes_left = self
            .second_factors
            .recovery_codes_left(who.user.id)
            .await
            .map_err(internal)?;
        Ok(OwnAccount {
            username: who.user.username.clone(),
            role: who.user.role,
            second_factor,
            recovery_codes_left,
            second_factor_required: self.required_for(who.user.role),
            enrolment_due,
            sessions: logins
                .into_iter()
                .map(|login| OwnSession {
                    current: login.id == who.login.0,
                    id: login.id,
                    client_addr: login.client_addr,
                    user_agent: login.user_agent,
                    created_at: login.created_at,
                    last_seen: login.last_seen,
                })
                .collect(),
        })
    }

    async fn begin_second_factor(&self) -> Result<Enrolment, AdminError> {
        const ACTION: &str = "second_factor.begin";
        let who = requester().await?;
        let secret = match self
            .second_factors
            .begin(who.user.id, &who.user.username, self.clock.now())
            .await
        {
            Ok(secret) => secret,
            Err(SecondFactorError::AlreadyEnrolled) => {
                let error = invalid("A second factor is in force already; remove it first.");
                return self.refuse(&who, ACTION, error).await;
            }
            Err(error) => return self.refuse(&who, ACTION, internal(error)).await,
        };
        // Nothing is in force until the confirmation: recorded after, as a read would be.
        self.record(&who, ACTION, Outcome::Success, "enrolment started")
            .await?;
        Ok(Enrolment {
            secret: secret.base32,
            otpauth_url: secret.otpauth_url,
            qr_svg: secret.qr_svg,
        })
    }

    async fn confirm_second_factor(&self, code: String) -> Result<Vec<String>, AdminError> {
        const ACTION: &str = "second_factor.enrol";
        let who = requester().await?;
        let attempt = self.begin(&who, ACTION).await?;
        let confirmed = async {
            let codes = match self
                .second_factors
                .confirm(who.user.id, &who.user.username, &code, self.clock.now())
                .await
            {
                Ok(Some(codes)) => codes,
                Ok(None) => {
                    return Err(invalid(
                        "That code is not right. Enter the code the app shows now (its clock must be right).",
                    ));
                }
                Err(SecondFactorError::NothingToConfirm) => {
                    return Err(invalid("Start setting up the second factor first."));
                }
                Err(error) => return Err(internal(error)),
            };
            self.logins
                .enrolment_done(who.user.id)
                .await
                .map_err(internal)?;
            Ok(codes)
        }
        .await;
        let done = confirmed.as_ref().map_or_else(
            |_| String::new(),
            |codes| format!("in force; {} recovery codes issued", codes.len()),
        );
        self.finish(attempt, confirmed, &done).await
    }

    async fn remove_second_factor(&self, password: String) -> Result<(), AdminError> {
        const ACTION: &str = "second_factor.remove";
        let who = requester().await?;
        if self.required_for(who.user.role) {
            let error = invalid(
                "Your role requires a second factor. To replace a lost one, ask another admin to \
                 reset it with `ctguard-server user reset-second-factor`.",
            );
            return self.refuse(&who, ACTION, error).await;
        }
        if let Err(error) = self.check_password(&who, &password).await {
            return self.refuse(&who, ACTION, error).await;
        }
        let attempt = self.begin(&who, ACTION).await?;
        let removed = match self.second_factors.remove(who.user.id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid("There is no second factor to remove.")),
            Err(error) => Err(internal(error)),
        };
        self.finish(attempt, removed, "removed").await
    }

    async fn change_password(&self, current: String, new: String) -> Result<u64, AdminError> {
        const ACTION: &str = "password.change";
        let who = requester().await?;
        let password = match acceptable(new) {
            Ok(password) => password,
            Err(weak) => {
                let error = invalid(format!("{}.", capitalised(&weak.to_string())));
                return self.refuse(&who, ACTION, error).await;
            }
        };
        if let Err(error) = self.check_password(&who, &current).await {
            return self.refuse(&who, ACTION, error).await;
        }
        let name = match Username::parse(&who.user.username) {
            Ok(name) => name,
            Err(error) => return self.refuse(&who, ACTION, internal(error)).await,
        };
        let hash = match self.hasher.hash(&password).await {
            Ok(hash) => hash,
            Err(error) => return self.refuse(&who, ACTION, internal(error)).await,
        };
        let attempt = self.begin(&who, ACTION).await?;
        let now = self.clock.now();
        let changed = async {
            self.users
                .set_password(&name, &hash, now)
                .await
                .map_err(internal)?;
            // Whoever else holds a session of this account (the reason to change it, often) is
            // out.
            self.logins
                .end_others_of(who.user.id, &who.login.0, now, EndReason::PasswordChanged)
                .await
                .map_err(internal)
        }
        .await;
        self.finish(attempt, changed, "changed; the other sessions ended")
            .await
    }

    async fn end_session(&self, session_id: String) -> Result<(), AdminError> {
        const ACTION: &str = "session.end_own";
        let who = requester().await?;
        // Audited by a prefix of the id: enough to correlate, useless to replay.
        let prefix: String = session_id.chars().take(8).collect();
        let event = AuditEvent::by(&who.user, &who.client, ACTION, Outcome::Pending)
            .target(&prefix)
            .detail("under way");
        let attempt = self
            .audit
            .begin(self.clock.now(), event)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot write the audit record; the session is not ended");
                AdminError::Unaudited(
                    "Nothing was changed: the audit log cannot be written.".to_owned(),
                )
            })?;
        let ended = self
            .logins
            .end_own(
                who.user.id,
                &session_id,
                self.clock.now(),
                EndReason::EndedByUser,
            )
            .await
            .map_err(internal);
        // Another user's session, an ended one and a made-up id are all the same refusal.
        let ended = match ended {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid("You have no such session.")),
            Err(error) => Err(error),
        };
        self.finish(attempt, ended, "ended").await
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
