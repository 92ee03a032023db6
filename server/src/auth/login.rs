//! The sign-in and sign-out handlers: plain HTML form posts, so they work before (and without) the
//! wasm bundle and with the keyboard alone. A user with a second factor signs in in two steps: the
//! password puts a pending sign-in in the session (for five minutes, no login yet), and the code
//! (`second_factor`) completes it. Both steps count towards the same throttle.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use ctguard_app::{
    auth::{CurrentUser, Role},
    session::{ACCOUNT_PATH, CODE_STEP, LOGIN_PATH, LoginError},
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::{
    audit::{Attempt, AuditEvent, AuditStore, Finished, Outcome},
    auth::{
        SessionPolicy,
        authenticate::LOGIN_KEY,
        next_page::PanelPages,
        second_factor::SecondFactorStore,
        throttle::{Locked, LoginThrottle, Reservation},
    },
    client_info::ClientInfo,
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
    pub second_factors: SecondFactorStore,
    /// Whether admins must have a second factor.
    pub policy: SessionPolicy,
}

/// The session key of a sign-in whose password was right, waiting for its second factor.
const PENDING_KEY: &str = "second_factor_pending";
/// How long the second step may come after the first.
const PENDING_SECS: i64 = 5 * 60;

/// A sign-in half done: who, since when, and where to go afterwards.
#[derive(Debug, Serialize, Deserialize)]
struct PendingSignIn {
    user_id: i64,
    username: String,
    since: i64,
    next: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm").finish_non_exhaustive()
    }
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

/// Back to the code form of the second step, with what went wrong.
fn back_to_code(error: LoginError) -> Response {
    Redirect::to(&format!(
        "{LOGIN_PATH}?step={CODE_STEP}&error={}",
        error.code()
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

    let known_device = known_device(&service, &headers, &attempted, now).await;
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
            // Folded per minute: a locked-out attacker's retries cannot flood the audit log.
            let _ = service
                .audit
                .record_aggregated(
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
    let (user, second_factor) = match check.await {
        Ok(Ok(checked)) => checked,
        Ok(Err(error)) => return back_to_login(error, &next),
        Err(error) => {
            tracing::error!(%error, "the password check panicked");
            return back_to_login(LoginError::Unavailable, &next);
        }
    };

    if second_factor {
        return ask_for_the_code(&service, &session, &client, &user, next, now).await;
    }
    let enrolment_due = user.role() == Role::Admin && service.policy.second_factor_for_admins;
    let (detail, to) = if enrolment_due {
        (
            "signed in; a second factor must be enrolled first",
            ACCOUNT_PATH,
        )
    } else {
        ("signed in", next.as_str())
    };
    let signed_in = SignedIn {
        user: &user,
        enrolment_due,
        detail,
        known_device,
        to,
    };
    establish(&service, &session, &client, signed_in, now).await
}

/// The device token the request carries if it is known to `username`'s account.
async fn known_device(
    service: &LoginService,
    headers: &HeaderMap,
    username: &str,
    now: i64,
) -> Option<String> {
    let token = service.devices.presented(headers)?;
    match service.devices.recognises(&token, username, now).await {
        Ok(known) => known.then_some(token),
        Err(error) => {
            // Treated as an unknown browser: throttled with everyone else, not refused.
            tracing::warn!(%error, "cannot read devices");
            None
        }
    }
}

/// Ends the login this browser's session stood for, if any (another tab's, or an earlier user's
/// at a shared desk): the browser is signing in anew, and the Users page would count it as a
/// session until it idled out.
async fn end_previous_login(service: &LoginService, session: &Session, now: i64) {
    match session.remove::<String>(LOGIN_KEY).await {
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
}

/// The password was right and the user has a second factor: the session holds a pending sign-in
/// (under a new id) and the browser is asked for the code.
async fn ask_for_the_code(
    service: &LoginService,
    session: &Session,
    client: &ClientInfo,
    user: &UserRecord,
    next: String,
    now: i64,
) -> Response {
    end_previous_login(service, session, now).await;
    let pending = PendingSignIn {
        user_id: user.id,
        username: user.username.clone(),
        since: now,
        next: next.clone(),
    };
    if let Err(error) = session.cycle_id().await {
        tracing::error!(%error, "cannot rotate the session id");
        return back_to_login(LoginError::Unavailable, &next);
    }
    if let Err(error) = session.insert(PENDING_KEY, pending).await {
        tracing::error!(%error, "cannot store the session");
        return back_to_login(LoginError::Unavailable, &next);
    }
    let _ = service
        .audit
        .record(
            now,
            AuditEvent {
                role: Some(user.role().as_str()),
                ..login_event(
                    &user.username,
                    client,
                    Outcome::Success,
                    "password correct; second factor asked",
                )
            },
        )
        .await;
    Redirect::to(&format!("{LOGIN_PATH}?step={CODE_STEP}")).into_response()
}

/// A sign-in that passed every step, as [`establish`] records it.
struct SignedIn<'a> {
    user: &'a UserRecord,
    /// The login may only enrol a second factor.
    enrolment_due: bool,
    /// The audit record's words.
    detail: &'a str,
    /// The browser's device token, when it is known to the account already.
    known_device: Option<String>,
    /// Where the browser goes next.
    to: &'a str,
}

/// Completes a sign-in's record as failed (the password was right, the session could not be
/// made) and sends the browser back to the form.
async fn sign_in_failed(service: &LoginService, attempt: Attempt, why: &str, to: &str) -> Response {
    let finished = Finished {
        outcome: Outcome::Failed,
        detail: why,
        journal: None,
        arguments: None,
    };
    if let Err(error) = service.audit.finish(attempt, finished).await {
        tracing::error!(%error, "cannot record how a sign-in ended");
    }
    back_to_login(LoginError::Unavailable, to)
}

/// Signs the browser in: the sign-in is put on record first (a sign-in that cannot be audited is
/// refused), the previous login of its session ends, the session gets a new id and a new login,
/// the record is completed and an unknown browser gets its device cookie.
async fn establish(
    service: &LoginService,
    session: &Session,
    client: &ClientInfo,
    signed_in: SignedIn<'_>,
    now: i64,
) -> Response {
    let SignedIn {
        user,
        enrolment_due,
        detail,
        known_device,
        to,
    } = signed_in;
    let attempt = match service
        .audit
        .begin(
            now,
            AuditEvent {
                role: Some(user.role().as_str()),
                ..login_event(&user.username, client, Outcome::Pending, detail)
            },
        )
        .await
    {
        Ok(attempt) => attempt,
        Err(error) => {
            tracing::error!(%error, user = ?user.username, "cannot audit the sign-in; refused");
            return back_to_login(LoginError::Unavailable, to);
        }
    };
    end_previous_login(service, session, now).await;
    // A new session id at every sign-in: a fixated or stolen pre-login id is worthless.
    if let Err(error) = session.cycle_id().await {
        tracing::error!(%error, "cannot rotate the session id");
        return sign_in_failed(service, attempt, "the session id could not be rotated", to).await;
    }
    let login_id = match service
        .logins
        .create_restricted(
            user.id,
            now,
            &client.addr.to_string(),
            &client.user_agent,
            enrolment_due,
        )
        .await
    {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot record the login");
            return sign_in_failed(service, attempt, "the login could not be recorded", to).await;
        }
    };
    if let Err(error) = session.insert(LOGIN_KEY, login_id).await {
        tracing::error!(%error, "cannot store the session");
        return sign_in_failed(service, attempt, "the session could not be stored", to).await;
    }
    let finished = Finished {
        outcome: Outcome::Success,
        detail,
        journal: None,
        arguments: None,
    };
    if let Err(error) = service.audit.finish(attempt, finished).await {
        // Signed in and on record (as pending) all the same.
        tracing::error!(%error, "cannot record how a sign-in ended");
    }
    let mut response = Redirect::to(to).into_response();
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

/// The second step of a sign-in: the code from the authenticator app, or a recovery code. Counted
/// by the throttle as a password is (a wrong code is a failed attempt at the account); a right one
/// completes the sign-in that the session's first step began.
pub async fn second_factor(
    State(service): State<LoginService>,
    client: ClientInfo,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let now = service.clock.now();
    let pending = match session.get::<PendingSignIn>(PENDING_KEY).await {
        Ok(Some(pending)) if now - pending.since < PENDING_SECS => pending,
        Ok(_) => {
            let _ = session.remove::<PendingSignIn>(PENDING_KEY).await;
            return back_to_login(LoginError::Expired, "/");
        }
        Err(error) => {
            tracing::warn!(%error, "unreadable session");
            return back_to_login(LoginError::Expired, "/");
        }
    };
    let known_device = known_device(&service, &headers, &pending.username, now).await;
    let reservation = match service.throttle.reserve(
        &pending.username,
        client.addr,
        known_device.as_deref(),
    ) {
        Ok(reservation) => reservation,
        Err(Locked { retry_after }) => {
            tracing::warn!(user = ?pending.username, client = %client.addr, retry_after, "second factor throttled");
            let _ = service
                .audit
                .record_aggregated(
                    now,
                    AuditEvent {
                        action: "login.second_factor",
                        ..login_event(
                            &pending.username,
                            &client,
                            Outcome::Refused,
                            "throttled: too many failed attempts",
                        )
                    },
                )
                .await;
            return back_to_code(LoginError::Throttled);
        }
    };
    // Spawned for the reason the password check is: a counted attempt is always audited.
    let check = tokio::spawn(check_code(
        service.clone(),
        pending.username.clone(),
        pending.user_id,
        form.code,
        client.clone(),
        reservation,
        now,
    ));
    let (user, how) = match check.await {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(error)) => return back_to_code(error),
        Err(error) => {
            tracing::error!(%error, "the code check panicked");
            return back_to_code(LoginError::Unavailable);
        }
    };
    let _ = session.remove::<PendingSignIn>(PENDING_KEY).await;
    let next = service.pages.after_sign_in(&pending.next);
    let detail = format!("signed in {how}");
    let signed_in = SignedIn {
        user: &user,
        enrolment_due: false,
        detail: &detail,
        known_device,
        to: &next,
    };
    establish(&service, &session, &client, signed_in, now).await
}

/// Checks a reserved second-step attempt: the user and how the code was accepted (the
/// reservation handed back), else the error to show, with the attempt audited.
async fn check_code(
    service: LoginService,
    username: String,
    user_id: i64,
    code: String,
    client: ClientInfo,
    reservation: Reservation,
    now: i64,
) -> Result<(UserRecord, String), LoginError> {
    let refused = |outcome, detail, error| {
        let service = &service;
        let event = AuditEvent {
            action: "login.second_factor",
            ..login_event(&username, &client, outcome, detail)
        };
        async move {
            let _ = service.audit.record(now, event).await;
            Err(error)
        }
    };
    // The account as it is now: disabled, or replaced under the same name, since the password.
    let user = match service.users.find(&username).await {
        Ok(Some(user)) if user.id == user_id && !user.disabled => user,
        Ok(_) => {
            return refused(
                Outcome::Refused,
                "the account changed since the password",
                LoginError::Expired,
            )
            .await;
        }
        Err(error) => {
            tracing::error!(%error, "cannot read users");
            return refused(
                Outcome::Failed,
                "the code could not be checked",
                LoginError::Unavailable,
            )
            .await;
        }
    };
    match service
        .second_factors
        .verify(user.id, &user.username, &code, now)
        .await
    {
        Ok(Some(accepted)) => {
            service.throttle.succeeded(reservation);
            Ok((user, accepted.describe()))
        }
        Ok(None) => {
            refused(
                Outcome::Refused,
                "wrong or already used second-factor code",
                LoginError::Code,
            )
            .await
        }
        Err(error) => {
            tracing::error!(%error, "second-factor check failed");
            refused(
                Outcome::Failed,
                "the code could not be checked",
                LoginError::Unavailable,
            )
            .await
        }
    }
}

/// The audit record of a sign-in attempt by the name `attempted` (no role: nobody is signed in).
fn login_event<'a>(
    attempted: &'a str,
    client: &'a ClientInfo,
    outcome: Outcome,
    detail: &'a str,
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

/// Checks the password of a reserved attempt: the user if it is right, and whether a second
/// factor is still to come, else the error to show, with the attempt audited. A right password
/// hands its reservation back only when it completes the sign-in: for a user with a second factor
/// it stays counted until the code is right, so that wrong codes and right passwords taken in
/// turns cannot clear each other.
async fn check_password(
    service: LoginService,
    attempted: String,
    password: String,
    client: ClientInfo,
    reservation: Reservation,
    now: i64,
) -> Result<(UserRecord, bool), LoginError> {
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
            match service.second_factors.enrolled(user.id).await {
                Ok(true) => {
                    drop(reservation);
                    Ok((user, true))
                }
                Ok(false) => {
                    service.throttle.succeeded(reservation);
                    Ok((user, false))
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read second factors");
                    refused(
                        Outcome::Failed,
                        "the password could not be checked",
                        LoginError::Unavailable,
                    )
                    .await
                }
            }
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
