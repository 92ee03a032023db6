//! Who creates entries (issue 15), the server's side: the one place a helper's `creators` answer
//! (or its refusal) becomes a [`CreatorsView`], and `GET /api/creators`, that view as JSON for
//! viewers and up. The helper answers from memory (kernel counters it reads every 10 s), so an
//! ask costs no walk of the table and is not one of a session's expensive reads.

use axum::{
    Extension, Json,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use ctguard_app::{
    auth::{CurrentUser, Permission},
    operators::creators::{CREATORS_LISTED, CreatorsUnavailable, CreatorsView},
};
use ctguard_protocol::{HelperError, creators::MAX_CREATORS_PER_LIST};
use serde::Deserialize;

use crate::helper_client::{HelperClient, HelperClientError};

pub const CREATORS_PATH: &str = "/api/creators";

/// The helper's creators as a view: unavailable (typed) when it does not count them (a helper
/// that does not know the request, or whose counting table nftables refused), an error only when
/// it could not be asked or failed.
pub async fn ask(helper: &HelperClient, limit: u16) -> Result<CreatorsView, HelperClientError> {
    match helper.creators(limit).await {
        Ok(creators) => {
            if let Some(problem) = creators.problem.as_deref().filter(|_| !creators.counting) {
                tracing::debug!(problem, "the helper does not count creators");
            }
            Ok(CreatorsView::from_answer(creators))
        }
        Err(HelperClientError::Failed(
            HelperError::Unsupported { .. } | HelperError::MalformedRequest { .. },
        )) => Ok(CreatorsView::Unavailable {
            reason: CreatorsUnavailable::Unsupported,
        }),
        Err(error) => Err(error),
    }
}

/// What `GET /api/creators` asks with: the reads lane, a status read's deadline.
#[derive(Debug, Clone)]
pub struct CreatorsApi {
    pub helper: HelperClient,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorsQuery {
    /// Creators per key and window, 1 to 50; default [`CREATORS_LISTED`].
    limit: Option<u16>,
}

/// `GET /api/creators[?limit=N]`: the [`CreatorsView`] as JSON. 400 for a bad limit, 503 (with
/// the coarse outage in words, never the helper's error) when the helper cannot be asked.
#[tracing::instrument(name = "api_creators", skip_all, fields(user))]
pub async fn creators(
    State(api): State<CreatorsApi>,
    user: Option<Extension<CurrentUser>>,
    query: Result<Query<CreatorsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // The route table has already refused other roles; this is the second lock on the door.
    let Some(Extension(user)) = user.filter(|Extension(user)| user.may(Permission::ViewTable))
    else {
        return (StatusCode::FORBIDDEN, "Your role does not allow this.").into_response();
    };
    tracing::Span::current().record("user", tracing::field::debug(&user.username));
    let limit = match query {
        Ok(Query(query)) => query.limit.unwrap_or(CREATORS_LISTED),
        Err(_) => 0,
    };
    if !(1..=MAX_CREATORS_PER_LIST).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            format!("The only parameter is limit, 1 to {MAX_CREATORS_PER_LIST}."),
        )
            .into_response();
    }
    match ask(&api.helper, limit).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => {
            tracing::warn!(%error, "creators: the helper could not be asked");
            (StatusCode::SERVICE_UNAVAILABLE, error.outage().explain()).into_response()
        }
    }
}
