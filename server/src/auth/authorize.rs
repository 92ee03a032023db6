//! The route table: which role may call which endpoint. Every request passes through it, and what
//! it does not list is refused, signed in or not: a path it does not name gets 404, a method it does
//! not list for the path 405, before any handler, page or file sees the request. A signed-in
//! user's refused attempt to change something is audited. A login that must enrol a second factor
//! first reaches only its account page and the enrolment.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use ctguard_app::{
    account::{
        BeginSecondFactor, ChangeOwnPassword, ConfirmSecondFactor, EndOwnSession, MyAccount,
        RemoveSecondFactor,
    },
    admin::audit::{AUDIT_CSV_PATH, JournalStatus, QueryAudit},
    admin::users::{ApplyUserChange, ListAccounts, PreviewUserChange},
    auth::{CurrentUser, Permission},
    dashboard::LoadDashboard,
    dashboard::live::{LIVE_EVENTS_PATH, LatestSample},
    operators::operations::{
        ActiveBlocks, ApplyOperation, EntriesOf, ListCreators, PreviewOperation, ReadTrace,
        Suspects,
    },
    operators::tuning::{ApplyTuning, LoadTuning, PreviewTuning},
    session::{
        ACCOUNT_PATH, CurrentUserQuery, LOGIN_PATH, LOGOUT_PATH, SECOND_FACTOR_PATH, SIGN_IN_PATH,
        SecondFactorDue,
    },
};
use leptos::server_fn::ServerFn;

use crate::{
    audit::{AuditEvent, AuditStore, Outcome},
    auth::request_path::is_static_file,
    client_info::ClientInfo,
    clock::SharedClock,
};

/// Where refused attempts are recorded.
#[derive(Debug, Clone)]
pub struct RefusalAudit {
    pub audit: AuditStore,
    pub clock: SharedClock,
}

impl RefusalAudit {
    /// Records that `user` tried a state-changing endpoint they may not use, and why not.
    async fn record(&self, request: Request, user: &CurrentUser, detail: String) {
        let path = request.uri().path().to_owned();
        let (mut parts, _) = request.into_parts();
        let Ok(client) = ClientInfo::from_request_parts(&mut parts, &()).await;
        let event = AuditEvent::by(user, &client, "forbidden", Outcome::Refused)
            .target(&path)
            .detail(&detail);
        // Folded per minute: a signed-in user can repeat a refused request cheaply.
        if let Err(error) = self.audit.record_aggregated(self.clock.now(), event).await {
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
    Requires(Permission),
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

/// THE table of endpoints. Pages are GET (and HEAD); server functions POST. Static files under
/// `/pkg/` and the favicon are public (they are the same for everyone). An endpoint the server
/// registers without a row here is refused (and fails `sessions.rs`'s enumeration test).
pub fn routes() -> Vec<Route> {
    use Access::{Public, Requires};
    use Permission::{Block, ManageUsers, OwnAccount, Tune, ViewAudit, ViewTable};
    vec![
        route(Method::GET, LOGIN_PATH, Public),
        route(Method::POST, SIGN_IN_PATH, Public),
        // The second step of a sign-in: the handler checks the session's first step.
        route(Method::POST, SECOND_FACTOR_PATH, Public),
        route(Method::POST, LOGOUT_PATH, Public),
        route(Method::POST, CurrentUserQuery::PATH, Public),
        route(Method::GET, "/", Requires(ViewTable)),
        route(Method::GET, LIVE_EVENTS_PATH, Requires(ViewTable)),
        route(Method::POST, LatestSample::PATH, Requires(ViewTable)),
        route(Method::POST, LoadDashboard::PATH, Requires(ViewTable)),
        // For Prometheus, which does not sign in: counters, and the addresses of the top
        // creators only as `--metrics-top-creators` allows (see README, SECURITY.md).
        route(Method::GET, crate::metrics::METRICS_PATH, Public),
        route(Method::GET, "/suspicious", Requires(ViewTable)),
        route(Method::POST, Suspects::PATH, Requires(ViewTable)),
        route(Method::POST, EntriesOf::PATH, Requires(ViewTable)),
        route(Method::POST, ListCreators::PATH, Requires(ViewTable)),
        // The running trace's counts; starting and stopping one are operations (`Block`).
        route(Method::POST, ReadTrace::PATH, Requires(ViewTable)),
        route(
            Method::GET,
            crate::creators::CREATORS_PATH,
            Requires(ViewTable),
        ),
        route(Method::GET, "/blocks", Requires(ViewTable)),
        // Viewers see the settings and the advice; changing them is `Tune`.
        route(Method::GET, "/tuning", Requires(ViewTable)),
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
        route(Method::GET, ACCOUNT_PATH, Requires(OwnAccount)),
        route(Method::POST, MyAccount::PATH, Requires(OwnAccount)),
        route(Method::POST, BeginSecondFactor::PATH, Requires(OwnAccount)),
        route(
            Method::POST,
            ConfirmSecondFactor::PATH,
            Requires(OwnAccount),
        ),
        route(Method::POST, RemoveSecondFactor::PATH, Requires(OwnAccount)),
        route(Method::POST, ChangeOwnPassword::PATH, Requires(OwnAccount)),
        route(Method::POST, EndOwnSession::PATH, Requires(OwnAccount)),
    ]
}

/// What a login that must enrol a second factor first may use (besides the public rows): the
/// account page and the enrolment.
fn open_before_enrolment(path: &str) -> bool {
    [
        ACCOUNT_PATH,
        MyAccount::PATH,
        BeginSecondFactor::PATH,
        ConfirmSecondFactor::PATH,
    ]
    .contains(&path)
}

/// Why a request has no row in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlisted {
    /// No row names the path.
    Path,
    /// Rows name the path, for these methods only.
    Method(Vec<Method>),
}

/// Who may send `method` to `path`, or why nobody may. HEAD is allowed wherever GET is.
pub fn access(method: &Method, path: &str) -> Result<Access, Unlisted> {
    let static_methods = [Method::GET, Method::HEAD];
    if is_static_file(path) {
        return if static_methods.contains(method) {
            Ok(Access::Public)
        } else {
            Err(Unlisted::Method(static_methods.into()))
        };
    }
    let rows: Vec<Route> = routes().into_iter().filter(|r| r.path == path).collect();
    if rows.is_empty() {
        return Err(Unlisted::Path);
    }
    rows.iter()
        .find(|r| r.method == method || (method == Method::HEAD && r.method == Method::GET))
        .map(|r| r.access)
        .ok_or_else(|| Unlisted::Method(rows.into_iter().map(|r| r.method).collect()))
}

/// The answer to a request the table does not list: the same for everyone, signed in or not.
fn refuse_unlisted(unlisted: Unlisted) -> Response {
    match unlisted {
        Unlisted::Path => (StatusCode::NOT_FOUND, "Not found.").into_response(),
        Unlisted::Method(allowed) => {
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut response =
                (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.").into_response();
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    }
}

/// Middleware: refuses what the table does not allow. What it does not list is refused outright;
/// anonymous page views are sent to the login page (and back afterwards); anonymous API calls get
/// 401; the wrong role gets 403, and when the request would have changed something (anything but
/// GET), an audit record.
pub async fn authorize(
    State(refusals): State<RefusalAudit>,
    request: Request,
    next: Next,
) -> Response {
    let action = match access(request.method(), request.uri().path()) {
        Ok(Access::Public) => return next.run(request).await,
        Ok(Access::Requires(action)) => action,
        Err(unlisted) => {
            tracing::info!(method = %request.method(), path = ?request.uri().path(), "not in the route table");
            return refuse_unlisted(unlisted);
        }
    };
    let enrolment_due = request.extensions().get::<SecondFactorDue>().is_some();
    match request.extensions().get::<CurrentUser>().cloned() {
        Some(_) if enrolment_due && !open_before_enrolment(request.uri().path()) => {
            if wants_page(&request) {
                return Redirect::to(ACCOUNT_PATH).into_response();
            }
            if let Some(user) = request.extensions().get::<CurrentUser>().cloned()
                && changes_something(&request)
            {
                let detail = "a second factor must be enrolled first".to_owned();
                refusals.record(request, &user, detail).await;
            }
            (StatusCode::FORBIDDEN, "Set up your second factor first.").into_response()
        }
        Some(user) if user.may(action) => next.run(request).await,
        Some(user) => {
            tracing::warn!(user = ?user.username, role = %user.role, ?action, path = request.uri().path(), "forbidden");
            if changes_something(&request) {
                let detail = format!("the role {} may not {action:?}", user.role);
                refusals.record(request, &user, detail).await;
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

fn changes_something(request: &Request) -> bool {
    request.method() != Method::GET && request.method() != Method::HEAD
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
    fn static_files_are_public_and_what_the_table_does_not_list_is_refused() {
        assert_eq!(
            access(&Method::GET, "/pkg/ctguard.wasm"),
            Ok(Access::Public)
        );
        assert_eq!(
            access(&Method::HEAD, "/pkg/ctguard.wasm"),
            Ok(Access::Public)
        );
        assert_eq!(access(&Method::GET, "/login"), Ok(Access::Public));
        assert_eq!(access(&Method::GET, "/no/such/page"), Err(Unlisted::Path));
        assert_eq!(access(&Method::GET, "/pkg/../users"), Err(Unlisted::Path));
        assert_eq!(
            access(&Method::POST, "/pkg/ctguard.wasm"),
            Err(Unlisted::Method(vec![Method::GET, Method::HEAD]))
        );
        assert_eq!(
            access(&Method::DELETE, "/users"),
            Err(Unlisted::Method(vec![Method::GET]))
        );
        assert_eq!(
            access(&Method::HEAD, "/users"),
            Ok(Access::Requires(Permission::ManageUsers))
        );
    }

    #[test]
    fn every_action_is_reachable_through_some_route() {
        for action in Permission::ALL {
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
