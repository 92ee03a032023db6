//! The route table: which role may call which endpoint. Every request passes through it; a path it
//! does not list needs at least a signed-in viewer (so even "not found" pages reveal nothing to
//! strangers). A signed-in user's refused attempt to change something is audited.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use ctguard_app::{
    audit::{AUDIT_CSV_PATH, JournalStatus, QueryAudit},
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

use crate::{
    audit::{AuditEvent, AuditStore, Outcome},
    client::ClientInfo,
    clock::SharedClock,
};

/// Where refused attempts are recorded.
#[derive(Debug, Clone)]
pub struct RefusalAudit {
    pub audit: AuditStore,
    pub clock: SharedClock,
}

impl RefusalAudit {
    /// Records that `user` tried a state-changing endpoint their role does not allow.
    async fn record(&self, request: Request, user: &CurrentUser, action: Action) {
        let path = request.uri().path().to_owned();
        let (mut parts, _) = request.into_parts();
        let Ok(client) = ClientInfo::from_request_parts(&mut parts, &()).await;
        let detail = format!("the role {} may not {action:?}", user.role);
        let event = AuditEvent::by(user, &client, "forbidden", Outcome::Refused)
            .target(&path)
            .detail(&detail);
        if let Err(error) = self.audit.record(self.clock.now(), event).await {
            tracing::error!(%error, "cannot audit a refused request");
        }
    }
}

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
        route(Method::POST, JournalStatus::PATH, Requires(ViewAudit)),
        route(Method::GET, AUDIT_CSV_PATH, Requires(ViewAudit)),
    ]
}

/// The built site's files (wasm, JavaScript, CSS) and the favicon: the same for everyone.
pub fn is_static_file(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg"
}

pub fn access(method: &Method, path: &str) -> Access {
    if (method == Method::GET || method == Method::HEAD) && is_static_file(path) {
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
/// page (and back afterwards); anonymous API calls get 401; the wrong role gets 403, and when the
/// request would have changed something (anything but GET), an audit record.
pub async fn authorize(
    State(refusals): State<RefusalAudit>,
    request: Request,
    next: Next,
) -> Response {
    let Access::Requires(action) = access(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match request.extensions().get::<CurrentUser>().cloned() {
        Some(user) if user.may(action) => next.run(request).await,
        Some(user) => {
            tracing::warn!(user = ?user.username, role = %user.role, ?action, path = request.uri().path(), "forbidden");
            if request.method() != Method::GET && request.method() != Method::HEAD {
                refusals.record(request, &user, action).await;
            }
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
