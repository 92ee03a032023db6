//! Account management for admins: the view types and the server functions behind the Users page.
//! The server implements [`ssr::AccountAdmin`]; these functions check the role again and delegate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::Role;

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

#[server]
pub async fn list_accounts() -> Result<Vec<Account>, ServerFnError> {
    ssr::admin().await?.list().await.map_err(Into::into)
}

#[server]
pub async fn add_user(username: String, password: String, role: Role) -> Result<(), ServerFnError> {
    ssr::admin()
        .await?
        .add(username, password, role)
        .await
        .map_err(Into::into)
}

#[server]
pub async fn set_role(username: String, role: Role) -> Result<(), ServerFnError> {
    ssr::admin()
        .await?
        .set_role(username, role)
        .await
        .map_err(Into::into)
}

#[server]
pub async fn set_disabled(username: String, disabled: bool) -> Result<(), ServerFnError> {
    ssr::admin()
        .await?
        .set_disabled(username, disabled)
        .await
        .map_err(Into::into)
}

#[server]
pub async fn end_session(session_id: String) -> Result<(), ServerFnError> {
    ssr::admin()
        .await?
        .end_session(session_id)
        .await
        .map_err(Into::into)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use leptos::prelude::*;

    use super::Account;
    use crate::{
        auth::{Action, Role},
        session::require,
    };

    /// What went wrong, in words safe to show an admin: validation messages are; internal errors
    /// are replaced by a generic line (details go to the server log).
    #[derive(Debug, Clone, thiserror::Error)]
    pub enum AdminError {
        #[error("{0}")]
        Invalid(String),
        #[error("Something went wrong; the server log has the details.")]
        Internal,
    }

    #[async_trait::async_trait]
    pub trait AccountAdmin: Send + Sync + std::fmt::Debug {
        async fn list(&self) -> Result<Vec<Account>, AdminError>;
        async fn add(
            &self,
            username: String,
            password: String,
            role: Role,
        ) -> Result<(), AdminError>;
        async fn set_role(&self, username: String, role: Role) -> Result<(), AdminError>;
        async fn set_disabled(&self, username: String, disabled: bool) -> Result<(), AdminError>;
        async fn end_session(&self, session_id: String) -> Result<(), AdminError>;
    }

    pub type SharedAccountAdmin = Arc<dyn AccountAdmin>;

    pub async fn admin() -> Result<SharedAccountAdmin, ServerFnError> {
        require(Action::ManageUsers).await?;
        Ok(expect_context::<SharedAccountAdmin>())
    }
}
