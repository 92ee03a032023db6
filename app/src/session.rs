//! The signed-in session as the UI sees it: the paths of the sign-in flow, its error codes, and the
//! server function that tells the UI who is signed in.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::auth::Action;
use crate::auth::CurrentUser;

/// The login page.
pub const LOGIN_PATH: &str = "/login";
/// Where the login form posts (handled by the server, not a server function: it must work before
/// the wasm bundle loads).
pub const SIGN_IN_PATH: &str = "/auth/login";
/// Where the sign-out button posts.
pub const LOGOUT_PATH: &str = "/auth/logout";

/// Why the login page is shown again, as carried in its `error` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginError {
    /// Wrong username or password, or a disabled account: deliberately not told apart.
    Invalid,
    Throttled,
    Unavailable,
}

impl LoginError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Invalid, Self::Throttled, Self::Unavailable]
            .into_iter()
            .find(|e| e.code() == code)
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "Wrong username or password.",
            Self::Throttled => "Too many failed attempts. Wait a minute and try again.",
            Self::Unavailable => "Signing in is not possible right now. Try again shortly.",
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

/// The signed-in user if their role allows `action`; for server functions, which check it again
/// behind the server's route table.
#[cfg(feature = "ssr")]
pub async fn require(action: Action) -> Result<CurrentUser, ServerFnError> {
    match leptos_axum::extract::<Option<axum::Extension<CurrentUser>>>().await? {
        Some(axum::Extension(user)) if user.may(action) => Ok(user),
        Some(_) => Err(ServerFnError::new("Your role does not allow this.")),
        None => Err(ServerFnError::new("Sign in first.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for error in [
            LoginError::Invalid,
            LoginError::Throttled,
            LoginError::Unavailable,
        ] {
            assert_eq!(LoginError::from_code(error.code()), Some(error));
        }
        assert_eq!(LoginError::from_code("<script>"), None);
    }
}
