//! Who is asking a server function to change something: the signed-in user, the login (session)
//! confirmations are bound to, and the client address audits record, all read from the request.

use ctguard_app::{admin::users::ssr::AdminError, auth::CurrentUser};

use crate::{audit::Outcome, auth::authenticate::SessionLogin, client_info::ClientInfo};

#[derive(Debug, Clone)]
pub struct Requester {
    pub user: CurrentUser,
    pub login: SessionLogin,
    pub client: ClientInfo,
}

/// The requester of the server function being run. The authentication layer put the user and the
/// login on the request; their absence is an internal error (the route table let it through).
pub async fn requester() -> Result<Requester, AdminError> {
    let (axum::Extension(user), axum::Extension(login), client) = leptos_axum::extract::<(
        axum::Extension<CurrentUser>,
        axum::Extension<SessionLogin>,
        ClientInfo,
    )>()
    .await
    .map_err(|error| {
        tracing::error!(%error, "request context missing");
        AdminError::Internal
    })?;
    Ok(Requester {
        user,
        login,
        client,
    })
}

/// How a refused or failed change is recorded in the audit log.
pub fn outcome_of(error: &AdminError) -> Outcome {
    match error {
        AdminError::Invalid(_) | AdminError::TooMany(_) => Outcome::Refused,
        AdminError::Internal | AdminError::Unaudited(_) => Outcome::Failed,
        AdminError::OutcomeUnknown(_) => Outcome::Unknown,
    }
}
