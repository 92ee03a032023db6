//! The sign-in and sign-out handlers: plain HTML form posts, so they work before (and without) the
//! wasm bundle and with the keyboard alone.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use ctguard_app::{
    auth::CurrentUser,
    session::{LOGIN_PATH, LoginError},
};
use serde::Deserialize;
use tower_sessions::Session;

use crate::{
    audit::{AuditEvent, AuditStore, Outcome},
    auth::{
        authenticate::LOGIN_KEY,
        next_page::PanelPages,
        throttle::{Locked, LoginThrottle, Reservation},
    },
    client::ClientInfo,
    clock::SharedClock,
    devices::DeviceStore,
    hashing::PasswordHasher,
    logins::{EndReason, LoginStore},
    users::{UserRecord, UserStore},
};

/// Longer input is not a username we could have issued; it is cut before any lookup.
const MAX_USERNAME_INPUT: usize = 64;

#[derive(Debug, Clone)]
pub struct LoginService {
    pub users: UserStore,
    pub logins: LoginStore,
    pub hasher: PasswordHasher,
    pub throttle: std::sync::Arc<LoginThrottle>,
    pub audit: AuditStore,
    pub clock: SharedClock,
    /// Where a browser may be sent after signing in.
    pub pages: PanelPages,
    /// Browsers that signed in before, which the throttle counts on their own.
    pub devices: DeviceStore,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn back_to_login(error: LoginError, next: &str) -> Response {
    Redirect::to(&format!(
        "{LOGIN_PATH}?error={}&next={}",
        error.code(),
        urlencode(next)
    ))
    .into_response()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub async fn sign_in(
    State(service): State<LoginService>,
    client: ClientInfo,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = service.clock.now();
    let next = service.pages.after_sign_in(&form.next);
    let attempted: String = form
        .username
        .trim()
        .to_ascii_lowercase()
        .chars()
        .take(MAX_USERNAME_INPUT)
        .collect();
    let audit = |outcome, detail| login_event(&attempted, &client, outcome, detail);

    let known_device = match service.devices.presented(&headers) {
        None => None,
        Some(token) => match service.devices.recognises(&token, &attempted, now).await {
            Ok(known) => known.then_some(token),
            Err(error) => {
                // Treated as an unknown browser: throttled with everyone else, not refused.
                tracing::warn!(%error, "cannot read devices");
                None
            }
        },
    };
    // Counted before the password is checked: parallel guesses cannot all pass a check made
    // before any of them has failed.
    let reservation = match service.throttle.reserve(
        &attempted,
        client.addr,
        known_device.as_deref(),
    ) {
        Ok(reservation) => reservation,
        Err(Locked { retry_after }) => {
            // `?`: the name is what the client typed; quoted and escaped, it cannot end the line.
            tracing::warn!(user = ?attempted, client = %client.addr, retry_after, "login throttled");
            let _ = service
                .audit
                .record(
                    now,
                    audit(Outcome::Refused, "throttled: too many failed attempts"),
                )
                .await;
            return back_to_login(LoginError::Throttled, &next);
        }
    };

    // Spawned, so that it runs to its end even when the client hangs up (and this handler is
    // dropped with its connection): every attempt that was counted is also audited.
    let check = tokio::spawn(check_password(
        service.clone(),
        attempted.clone(),
        form.password,
        client.clone(),
        reservation,
        now,
    ));
    let user = match check.await {
        Ok(Ok(user)) => user,
        Ok(Err(error)) => return back_to_login(error, &next),
        Err(error) => {
            tracing::error!(%error, "the password check panicked");
            return back_to_login(LoginError::Unavailable, &next);
        }
    };

    // The login this browser's session stood for (another tab's, or an earlier user's at a
    // shared desk) ends here: its cookie is replaced below, so nothing could use it again, and
    // the Users page would count it as a session until it idled out.
    match session.get::<String>(LOGIN_KEY).await {
        Ok(Some(previous)) => {
            if let Err(error) = service
                .logins
                .end(&previous, now, EndReason::SignedInAgain)
                .await
            {
                tracing::warn!(%error, "cannot end the browser's previous login");
            }
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "unreadable session"),
    }
    // A new session id at every sign-in: a fixated or stolen pre-login id is worthless.
    if let Err(error) = session.cycle_id().await {
        tracing::error!(%error, "cannot rotate the session id");
        return back_to_login(LoginError::Unavailable, &next);
    }
    let login_id = match service
        .logins
        .create(user.id, now, &client.addr.to_string(), &client.user_agent)
        .await
    {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot record the login");
            return back_to_login(LoginError::Unavailable, &next);
        }
    };
    if let Err(error) = session.insert(LOGIN_KEY, login_id).await {
        tracing::error!(%error, "cannot store the session");
        return back_to_login(LoginError::Unavailable, &next);
    }
    let role = user.role();
    let _ = service
        .audit
        .record(
            now,
            AuditEvent {
                role: Some(role.as_str()),
                ..audit(Outcome::Success, "signed in")
            },
        )
        .await;
    let mut response = Redirect::to(&next).into_response();
    if known_device.is_none() {
        match service.devices.issue(user.id, now).await {
            Ok(cookie) => {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            // Signed in all the same; this browser is just not known the next time.
            Err(error) => tracing::warn!(%error, "cannot remember the device"),
        }
    }
    response
}

/// The audit record of a sign-in attempt by the name `attempted` (no role: nobody is signed in).
fn login_event<'a>(
    attempted: &'a str,
    client: &'a ClientInfo,
    outcome: Outcome,
    detail: &'static str,
) -> AuditEvent<'a> {
    AuditEvent {
        actor: Some(attempted),
        role: None,
        client,
        action: "login",
        target: None,
        outcome,
        detail: Some(detail),
        preview: None,
        journal_id: None,
        arguments: None,
    }
}

/// Checks the password of a reserved attempt: the user if it is right (the reservation handed
/// back), else the error to show, with the attempt audited.
async fn check_password(
    service: LoginService,
    attempted: String,
    password: String,
    client: ClientInfo,
    reservation: Reservation,
    now: i64,
) -> Result<UserRecord, LoginError> {
    let refused = |outcome, detail, error| {
        let service = &service;
        let event = login_event(&attempted, &client, outcome, detail);
        async move {
            let _ = service.audit.record(now, event).await;
            Err(error)
        }
    };
    let user = match service.users.find(&attempted).await {
        Ok(user) => user,
        Err(error) => {
            tracing::error!(%error, "cannot read users");
            return refused(
                Outcome::Failed,
                "the password could not be checked",
                LoginError::Unavailable,
            )
            .await;
        }
    };
    // Unknown users are checked against a dummy hash: the answer and its timing are the same.
    let verified = service
        .hasher
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await;
    match (verified, user) {
        (Ok(true), Some(user)) if !user.disabled => {
            service.throttle.succeeded(reservation);
            Ok(user)
        }
        (Ok(_), _) => {
            refused(
                Outcome::Refused,
                "wrong username or password",
                LoginError::Invalid,
            )
            .await
        }
        (Err(error), _) => {
            tracing::error!(%error, "password check failed");
            refused(
                Outcome::Failed,
                "the password could not be checked",
                LoginError::Unavailable,
            )
            .await
        }
    }
}

pub async fn sign_out(
    State(service): State<LoginService>,
    client: ClientInfo,
    session: Session,
    user: Option<axum::Extension<CurrentUser>>,
) -> Response {
    let now = service.clock.now();
    if let Ok(Some(login_id)) = session.get::<String>(LOGIN_KEY).await {
        let _ = service.logins.end(&login_id, now, EndReason::Logout).await;
    }
    let _ = session.flush().await;
    if let Some(axum::Extension(user)) = user {
        let _ = service
            .audit
            .record(
                now,
                AuditEvent::by(&user, &client, "logout", Outcome::Success),
            )
            .await;
    }
    Redirect::to(&format!("{LOGIN_PATH}?signed_out=1")).into_response()
}
