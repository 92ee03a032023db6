//! The per-request session check: turns a session cookie into a `CurrentUser` on the request, or
//! into nothing when its login has ended, idled out or outlived its absolute lifetime.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use ctguard_app::{auth::CurrentUser, session::SecondFactorDue};
use tower_sessions::Session;

use crate::{
    auth::SessionPolicy,
    clock::SharedClock,
    logins::{ActiveLogin, EndReason, LoginStore},
};

/// The session key holding the login id.
pub const LOGIN_KEY: &str = "login";

/// The id of the login a request's session stands for, put on the request beside `CurrentUser`:
/// confirmations are bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogin(pub String);

/// `last_seen` is written at most this often per login, not on every request.
const TOUCH_EVERY_SECS: i64 = 15;

/// How often a login's activity is recorded: every [`TOUCH_EVERY_SECS`], or a tenth of the idle
/// timeout when that is shorter. The idle deadline counts from the last *recorded* request, so a
/// session in use ends at most this much before a full idle period after its last request.
fn touch_interval(idle_limit: i64) -> i64 {
    (idle_limit / 10).min(TOUCH_EVERY_SECS)
}

#[derive(Debug, Clone)]
pub struct Authenticator {
    pub logins: LoginStore,
    pub clock: SharedClock,
    pub policy: SessionPolicy,
}

impl Authenticator {
    /// The signed-in user of this session and its login id, if any, and whether that login must
    /// enrol a second factor before anything else; ends logins that have expired.
    pub async fn current_user(
        &self,
        session: &Session,
    ) -> Option<(CurrentUser, SessionLogin, bool)> {
        let login_id = match session.get::<String>(LOGIN_KEY).await {
            Ok(Some(id)) => id,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "unreadable session");
                return None;
            }
        };
        let login = match self.logins.active(&login_id).await {
            Ok(Some(login)) => login,
            Ok(None) => {
                // Ended elsewhere (logout in another tab, an admin, a user change): forget it.
                let _ = session.flush().await;
                return None;
            }
            Err(error) => {
                tracing::error!(%error, "cannot read logins");
                return None;
            }
        };
        let now = self.clock.now();
        if self.end_if_over(&login, now).await {
            let _ = session.flush().await;
            return None;
        }
        let idle_limit = self.limit(self.policy.idle);
        if now - login.last_seen >= touch_interval(idle_limit) {
            if let Err(error) = self.logins.touch(&login.id, now).await {
                tracing::warn!(%error, "cannot record session activity");
            }
            // tower-sessions saves a session, and sends its cookie again, only when it changed;
            // otherwise its record and the browser's cookie would expire an idle period after
            // sign-in however busy the session. Setting the same inactivity expiry marks it changed,
            // so both live another idle period from now, as the login does.
            session.set_expiry(session.expiry());
        }
        let user = login.current_user()?;
        Some((user, SessionLogin(login.id), login.enrolment_due))
    }

    /// Whether the login is still valid by the rules [`Self::current_user`] applies, ending it if
    /// it has just expired; unlike a request, asking does not count as activity. For what outlives
    /// a request (a live stream), so it ends with its login.
    pub async fn still_signed_in(&self, login_id: &str) -> bool {
        match self.logins.active(login_id).await {
            Ok(Some(login)) => !self.end_if_over(&login, self.clock.now()).await,
            Ok(None) => false,
            Err(error) => {
                tracing::error!(%error, "cannot read logins");
                false
            }
        }
    }

    /// Ends the login when its user is disabled or it has outlived a limit; true if it did.
    async fn end_if_over(&self, login: &ActiveLogin, now: i64) -> bool {
        let ended = if login.disabled {
            Some(EndReason::UserChanged)
        } else if now - login.created_at >= self.limit(self.policy.absolute) {
            Some(EndReason::Absolute)
        } else if now - login.last_seen >= self.limit(self.policy.idle) {
            Some(EndReason::Idle)
        } else {
            None
        };
        let Some(reason) = ended else {
            return false;
        };
        if let Err(error) = self.logins.end(&login.id, now, reason).await {
            tracing::error!(%error, "cannot end a login");
        }
        tracing::info!(user = ?login.username, reason = reason.as_str(), "session ended");
        true
    }

    fn limit(&self, limit: std::time::Duration) -> i64 {
        i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Middleware: puts the `CurrentUser` on the request when the session is valid.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some((user, login, enrolment_due)) = authenticator.current_user(&session).await {
        request.extensions_mut().insert(user);
        request.extensions_mut().insert(login);
        if enrolment_due {
            request.extensions_mut().insert(SecondFactorDue);
        }
    }
    next.run(request).await
}
