//! The route table: which role may call which endpoint. Every request passes through it; a path it
//! does not list needs at least a signed-in viewer (so even "not found" pages reveal nothing to
//! strangers).

use axum::{
    extract::Request,
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use ctguard_app::{
    audit::{AUDIT_CSV_PATH, QueryAudit},
    auth::{Action, CurrentUser},
    live::{LIVE_EVENTS_PATH, LatestSample},
    operations::{
        ActiveBlocks, ApplyOperation, ApplyTuning, EntriesOf, PreviewOperation, PreviewTuning,
        Suspects,
    },
    seed::LoadDashboard,
    session::{CurrentUserQuery, LOGIN_PATH, LOGOUT_PATH, SIGN_IN_PATH},
    settings::LoadTuning,
    users::{ApplyUserChange, ListAccounts, PreviewUserChange},
};
use leptos::server_fn::ServerFn;

/// Who may use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Signed-in users whose role allows the action.
    Requires(Action),
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

const fn route(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

/// THE table of endpoints. Pages are GET; server functions POST. Static files under `/pkg/` and the
/// favicon are public (they are the same for everyone).
pub fn routes() -> Vec<Route> {
    use Access::{Public, Requires};
    use Action::{Block, ManageUsers, Tune, ViewAudit, ViewTable};
    vec![
        route(Method::GET, LOGIN_PATH, Public),
        route(Method::POST, SIGN_IN_PATH, Public),
        route(Method::POST, LOGOUT_PATH, Public),
        route(Method::POST, CurrentUserQuery::PATH, Public),
        route(Method::GET, "/", Requires(ViewTable)),
        route(Method::GET, LIVE_EVENTS_PATH, Requires(ViewTable)),
        route(Method::POST, LatestSample::PATH, Requires(ViewTable)),
        route(Method::POST, LoadDashboard::PATH, Requires(ViewTable)),
        // For Prometheus, which does not sign in: counters only, no addresses (see README).
        route(Method::GET, crate::metrics::METRICS_PATH, Public),
        route(Method::GET, "/suspicious", Requires(ViewTable)),
        route(Method::POST, Suspects::PATH, Requires(ViewTable)),
        route(Method::POST, EntriesOf::PATH, Requires(ViewTable)),
        route(Method::GET, "/blocks", Requires(ViewTable)),
        route(Method::POST, ActiveBlocks::PATH, Requires(ViewTable)),
        route(Method::POST, LoadTuning::PATH, Requires(ViewTable)),
        route(Method::POST, PreviewOperation::PATH, Requires(Block)),
        route(Method::POST, ApplyOperation::PATH, Requires(Block)),
        route(Method::POST, PreviewTuning::PATH, Requires(Tune)),
        route(Method::POST, ApplyTuning::PATH, Requires(Tune)),
        route(Method::GET, "/users", Requires(ManageUsers)),
        route(Method::POST, ListAccounts::PATH, Requires(ManageUsers)),
        route(Method::POST, PreviewUserChange::PATH, Requires(ManageUsers)),
        route(Method::POST, ApplyUserChange::PATH, Requires(ManageUsers)),
        route(Method::GET, "/audit", Requires(ViewAudit)),
        route(Method::POST, QueryAudit::PATH, Requires(ViewAudit)),
        route(Method::GET, AUDIT_CSV_PATH, Requires(ViewAudit)),
    ]
}

pub fn access(method: &Method, path: &str) -> Access {
    if (method == Method::GET || method == Method::HEAD)
        && (path.starts_with("/pkg/") || path == "/favicon.svg")
    {
        return Access::Public;
    }
    routes()
        .into_iter()
        .find(|r| {
            r.path == path
                && (r.method == method || (method == Method::HEAD && r.method == Method::GET))
        })
        .map_or(Access::Requires(Action::ViewTable), |r| r.access)
}

/// Middleware: refuses what the table does not allow. Anonymous page views are sent to the login
/// page (and back afterwards); anonymous API calls get 401; the wrong role gets 403.
pub async fn authorize(request: Request, next: Next) -> Response {
    let Access::Requires(action) = access(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match request.extensions().get::<CurrentUser>() {
        Some(user) if user.may(action) => next.run(request).await,
        Some(user) => {
            tracing::warn!(user = %user.username, role = %user.role, ?action, path = request.uri().path(), "forbidden");
            (StatusCode::FORBIDDEN, "Your role does not allow this.").into_response()
        }
        None if wants_page(&request) => {
            let back = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            Redirect::to(&format!("{LOGIN_PATH}?next={}", encode_next(back))).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, "Sign in first.").into_response(),
    }
}

fn wants_page(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// Percent-encodes a path for the `next` parameter (only what a query value cannot hold raw).
fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_files_are_public_and_unknown_paths_need_a_viewer() {
        assert_eq!(access(&Method::GET, "/pkg/ctguard.wasm"), Access::Public);
        assert_eq!(access(&Method::GET, "/login"), Access::Public);
        assert_eq!(
            access(&Method::GET, "/no/such/page"),
            Access::Requires(Action::ViewTable)
        );
        assert_eq!(
            access(&Method::POST, "/pkg/ctguard.wasm"),
            Access::Requires(Action::ViewTable)
        );
        assert_eq!(
            access(&Method::GET, "/users"),
            Access::Requires(Action::ManageUsers)
        );
    }

    #[test]
    fn every_action_is_reachable_through_some_route() {
        for action in Action::ALL {
            assert!(
                routes()
                    .iter()
                    .any(|r| r.access == Access::Requires(action)),
                "{action:?} has no route"
            );
        }
    }

    #[test]
    fn next_is_encoded() {
        assert_eq!(encode_next("/users?x=1&y=2"), "/users%3Fx%3D1%26y%3D2");
    }
}
