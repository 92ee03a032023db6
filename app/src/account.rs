//! One's own account: the sessions (logins) a user has open and can end, their password and their
//! second factor. Every user has one, whatever the role, and sees only their own; the server
//! implements [`ssr::OwnAccountService`], these functions check the sign-in again and delegate.
//! Unlike an admin's changes these are not previewed: the current password (or a code from the
//! new second factor) is what confirms them.

pub mod page;

use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// What the account page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnAccount {
    pub username: String,
    pub role: Role,
    /// A confirmed second factor is in force.
    pub second_factor: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
    /// The server requires a second factor of this user's role.
    pub second_factor_required: bool,
    /// This login may do nothing else until a second factor is enrolled.
    pub enrolment_due: bool,
    pub sessions: Vec<OwnSession>,
}

/// One of the user's signed-in browsers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnSession {
    pub id: String,
    pub client_addr: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// The session this page is shown in.
    pub current: bool,
}

/// A second factor being enrolled: the secret to enter in an authenticator app, by hand or
/// through its QR code (an `otpauth://` URL drawn as SVG). It takes effect only once a code from
/// it is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// Base32, as authenticator apps take it typed.
    pub secret: String,
    pub otpauth_url: String,
    /// An `<svg>` element, drawn on the server.
    pub qr_svg: String,
}

#[server]
pub async fn my_account() -> Result<OwnAccount, ServerFnError> {
    ssr::service(true)
        .await?
        .account()
        .await
        .map_err(|e| e.into_server_error())
}

/// Starts (or restarts) an enrolment; nothing changes at sign-in until it is confirmed.
#[server(input = Json, endpoint = "begin_second_factor")]
pub async fn begin_second_factor() -> Result<Enrolment, ServerFnError> {
    ssr::service(true)
        .await?
        .begin_second_factor()
        .await
        .map_err(|e| e.into_server_error())
}

/// Confirms the enrolment with a first code from it; answers the recovery codes, shown once.
#[server(input = Json, endpoint = "confirm_second_factor")]
pub async fn confirm_second_factor(code: String) -> Result<Vec<String>, ServerFnError> {
    ssr::service(true)
        .await?
        .confirm_second_factor(code)
        .await
        .map_err(|e| e.into_server_error())
}

/// Removes the second factor and its recovery codes (the password confirms it).
#[server(input = Json, endpoint = "remove_second_factor")]
pub async fn remove_second_factor(password: String) -> Result<(), ServerFnError> {
    ssr::service(false)
        .await?
        .remove_second_factor(password)
        .await
        .map_err(|e| e.into_server_error())
}

/// Changes one's own password; answers how many other sessions it ended.
#[server(input = Json, endpoint = "change_own_password")]
pub async fn change_own_password(current: String, new: String) -> Result<u64, ServerFnError> {
    ssr::service(false)
        .await?
        .change_password(current, new)
        .await
        .map_err(|e| e.into_server_error())
}

/// Ends one of one's own sessions.
#[server(input = Json, endpoint = "end_own_session")]
pub async fn end_own_session(session_id: String) -> Result<(), ServerFnError> {
    ssr::service(false)
        .await?
        .end_session(session_id)
        .await
        .map_err(|e| e.into_server_error())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use leptos::prelude::*;

    use super::{Enrolment, OwnAccount};
    use crate::{
        admin::users::ssr::AdminError,
        auth::Permission,
        session::{require, require_even_before_enrolment},
    };

    #[async_trait::async_trait]
    pub trait OwnAccountService: Send + Sync + std::fmt::Debug {
        async fn account(&self) -> Result<OwnAccount, AdminError>;
        async fn begin_second_factor(&self) -> Result<Enrolment, AdminError>;
        async fn confirm_second_factor(&self, code: String) -> Result<Vec<String>, AdminError>;
        async fn remove_second_factor(&self, password: String) -> Result<(), AdminError>;
        async fn change_password(&self, current: String, new: String) -> Result<u64, AdminError>;
        async fn end_session(&self, session_id: String) -> Result<(), AdminError>;
    }

    pub type SharedOwnAccount = Arc<dyn OwnAccountService>;

    /// The service, for a signed-in user; `during_enrolment`: also for a login that must enrol a
    /// second factor before anything else (the page and the enrolment itself).
    pub async fn service(during_enrolment: bool) -> Result<SharedOwnAccount, ServerFnError> {
        if during_enrolment {
            require_even_before_enrolment(Permission::OwnAccount).await?;
        } else {
            require(Permission::OwnAccount).await?;
        }
        Ok(expect_context::<SharedOwnAccount>())
    }
}
