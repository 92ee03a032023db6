//! The cross-origin guard: a request that could change state (anything but GET, HEAD, OPTIONS) must
//! come from the panel's own pages. Leptos server functions do no such check by themselves.

use axum::{
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The origins the panel is served at, e.g. `https://ctguard.example.net` (scheme, host, port).
#[derive(Debug, Clone)]
pub struct PublicOrigins(pub std::sync::Arc<[String]>);

pub async fn same_origin_only(
    State(origins): State<PublicOrigins>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let sec_fetch_same_origin = || {
        headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "same-origin")
    };
    let allowed = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // Browsers send "null" where a referrer policy or privacy setting hides the origin; the
        // browser's own Sec-Fetch-Site then decides.
        Some("null") | None => sec_fetch_same_origin(),
        Some(sent) => origins.0.iter().any(|origin| origin == sent),
    };
    if allowed {
        next.run(request).await
    } else {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            origin = ?headers.get(header::ORIGIN),
            "cross-origin request refused"
        );
        (StatusCode::FORBIDDEN, "Cross-origin request refused.").into_response()
    }
}
