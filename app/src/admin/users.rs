//! Account management for admins: the view types and the server functions behind the Users page.
//! Every change is two steps, enforced by the server: `preview_user_change` returns what will
//! happen and a single-use token; only `apply_user_change` with that token and the same change
//! carries it out. The server implements [`ssr::AccountAdmin`]; these functions check the role again
//! and delegate.

pub mod page;

use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};

use crate::{auth::Role, confirm::Preview};

/// One account as the Users page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub sessions: Vec<SessionInfo>,
}

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub client_addr: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen: i64,
}

/// Every change the Users page can make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserChange {
    Add {
        username: String,
        password: String,
        role: Role,
    },
    SetRole {
        username: String,
        role: Role,
    },
    SetDisabled {
        username: String,
        disabled: bool,
    },
    EndSession {
        session_id: String,
    },
}

impl UserChange {
    /// The audit log's name for it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Add { .. } => "user.add",
            Self::SetRole { .. } => "user.role",
            Self::SetDisabled { disabled: true, .. } => "user.disable",
            Self::SetDisabled {
                disabled: false, ..
            } => "user.enable",
            Self::EndSession { .. } => "session.end",
        }
    }
}

#[server]
pub async fn list_accounts() -> Result<Vec<Account>, ServerFnError> {
    ssr::admin()
        .await?
        .list()
        .await
        .map_err(|e| e.into_server_error())
}

/// Step one: what the change would do, and the token that confirms it.
#[server(input = Json, endpoint = "preview_user_change")]
pub async fn preview_user_change(change: UserChange) -> Result<Preview, ServerFnError> {
    ssr::admin()
        .await?
        .preview(change)
        .await
        .map_err(|e| e.into_server_error())
}

/// Step two: carries out a previewed change.
#[server(input = Json, endpoint = "apply_user_change")]
pub async fn apply_user_change(token: String, change: UserChange) -> Result<(), ServerFnError> {
    ssr::admin()
        .await?
        .apply(token, change)
        .await
        .map_err(|e| e.into_server_error())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use leptos::prelude::*;

    use super::{Account, UserChange};
    use crate::{auth::Permission, confirm::Preview, session::require};

    /// What went wrong, in words safe to show an admin: validation messages are; internal errors
    /// are replaced by a generic line (details go to the server log).
    #[derive(Debug, Clone, thiserror::Error)]
    pub enum AdminError {
        #[error("{0}")]
        Invalid(String),
        /// Refused for now: too many requests of this kind (from this session, or for the helper);
        /// the same request later will do.
        #[error("{0}")]
        TooMany(String),
        #[error("Something went wrong; the server log has the details.")]
        Internal,
        /// Nothing was changed because the change could not be recorded first (the audit log
        /// cannot be written): a change that cannot be audited is not made.
        #[error("{0}")]
        Unaudited(String),
        /// The helper was asked and did not answer: the change may or may not have been made.
        #[error("{0}")]
        OutcomeUnknown(String),
    }

    impl AdminError {
        /// The error a server function answers with: 400 for a refusal, 429 for "not now", 500
        /// for a failure, 503 when nothing was done for want of an audit record, 504 when the
        /// helper did not answer.
        pub fn into_server_error(self) -> ServerFnError {
            let status = match self {
                Self::Invalid(_) => axum::http::StatusCode::BAD_REQUEST,
                Self::TooMany(_) => axum::http::StatusCode::TOO_MANY_REQUESTS,
                Self::Internal => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                Self::Unaudited(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Self::OutcomeUnknown(_) => axum::http::StatusCode::GATEWAY_TIMEOUT,
            };
            crate::session::refusal(status, self)
        }
    }

    #[async_trait::async_trait]
    pub trait AccountAdmin: Send + Sync + std::fmt::Debug {
        async fn list(&self) -> Result<Vec<Account>, AdminError>;
        async fn preview(&self, change: UserChange) -> Result<Preview, AdminError>;
        async fn apply(&self, token: String, change: UserChange) -> Result<(), AdminError>;
    }

    pub type SharedAccountAdmin = Arc<dyn AccountAdmin>;

    pub async fn admin() -> Result<SharedAccountAdmin, ServerFnError> {
        require(Permission::ManageUsers).await?;
        Ok(expect_context::<SharedAccountAdmin>())
    }
}
