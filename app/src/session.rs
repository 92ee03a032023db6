//! The signed-in session as the UI sees it: the paths of the sign-in flow, its error codes, and the
//! server function that tells the UI who is signed in.

pub mod login;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::CurrentUser;
#[cfg(feature = "ssr")]
use crate::auth::Permission;

/// The login page.
pub const LOGIN_PATH: &str = "/login";
/// Where the login form posts (handled by the server, not a server function: it must work before
/// the wasm bundle loads).
pub const SIGN_IN_PATH: &str = "/auth/login";
/// Where the sign-out button posts.
pub const LOGOUT_PATH: &str = "/auth/logout";
/// Where the second step of a sign-in posts its code (a plain form too).
pub const SECOND_FACTOR_PATH: &str = "/auth/second-factor";
/// The login page's query value that shows the code form instead of the password form.
pub const CODE_STEP: &str = "code";
/// The signed-in user's own account page (sessions, password, second factor).
pub const ACCOUNT_PATH: &str = "/account";

/// On a request whose login may do nothing but enrol a second factor: an admin who has none
/// while the server requires one of admins. The server's authentication layer puts it beside
/// `CurrentUser`; the route table and [`require`] refuse everything else while it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondFactorDue;

/// Why the login page is shown again, as carried in its `error` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginError {
    /// Wrong username or password, or a disabled account: deliberately not told apart.
    Invalid,
    Throttled,
    Unavailable,
    /// The second factor's code (or recovery code) was wrong, or already used.
    Code,
    /// The second step came too late, or without a first: start again with the password.
    Expired,
}

impl LoginError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Code => "code",
            Self::Expired => "expired",
        }
    }

    pub const ALL: [Self; 5] = [
        Self::Invalid,
        Self::Throttled,
        Self::Unavailable,
        Self::Code,
        Self::Expired,
    ];

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "Wrong username or password.",
            Self::Throttled => "Too many failed attempts. Wait a minute and try again.",
            Self::Unavailable => "Signing in is not possible right now. Try again shortly.",
            Self::Code => "Wrong or already used code.",
            Self::Expired => "That took too long. Sign in with your password again.",
        }
    }
}

/// The signed-in user, or `None`.
#[server]
pub async fn current_user_query() -> Result<Option<CurrentUser>, ServerFnError> {
    Ok(
        leptos_axum::extract::<Option<axum::Extension<CurrentUser>>>()
            .await?
            .map(|axum::Extension(user)| user),
    )
}

/// The signed-in user if their role allows `permission`; for server functions, which check it again
/// behind the server's route table. A login that must enrol a second factor first is refused.
#[cfg(feature = "ssr")]
pub async fn require(permission: Permission) -> Result<CurrentUser, ServerFnError> {
    use axum::http::StatusCode;
    let due = leptos_axum::extract::<Option<axum::Extension<SecondFactorDue>>>()
        .await?
        .is_some();
    if due {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "Set up your second factor first.",
        ));
    }
    require_even_before_enrolment(permission).await
}

/// As [`require`], also for a login that must enrol a second factor first: for the enrolment
/// itself and the account page that shows it.
#[cfg(feature = "ssr")]
pub async fn require_even_before_enrolment(
    permission: Permission,
) -> Result<CurrentUser, ServerFnError> {
    use axum::http::StatusCode;
    match leptos_axum::extract::<Option<axum::Extension<CurrentUser>>>().await? {
        Some(axum::Extension(user)) if user.may(permission) => Ok(user),
        Some(_) => Err(refusal(
            StatusCode::FORBIDDEN,
            "Your role does not allow this.",
        )),
        None => Err(refusal(StatusCode::UNAUTHORIZED, "Sign in first.")),
    }
}

/// A server function's error with the HTTP status that says whose it is: 4xx for what the person
/// asking can act on (a refused change, an expired confirmation), 500 only for the server's own
/// failures, so a refusal never counts as a server fault in a proxy's or a browser's eyes.
#[cfg(feature = "ssr")]
pub fn refusal(status: axum::http::StatusCode, message: impl std::fmt::Display) -> ServerFnError {
    // Only when the request is the server function's own: one called while a page renders shares
    // the page's response, and a refused part must not turn the whole page into an error.
    let serving_the_function = use_context::<axum::http::request::Parts>()
        .is_some_and(|parts| parts.uri.path().starts_with(SERVER_FN_PREFIX));
    if serving_the_function && let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
    ServerFnError::new(message)
}

/// Where server functions are served (Leptos' default prefix).
#[cfg(feature = "ssr")]
const SERVER_FN_PREFIX: &str = "/api/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for error in LoginError::ALL {
            assert_eq!(LoginError::from_code(error.code()), Some(error));
        }
        assert_eq!(LoginError::from_code("<script>"), None);
    }
}
