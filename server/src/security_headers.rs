//! Response headers every answer carries: no sniffing, no framing, no referrer, and a locked-down
//! default Content-Security-Policy. HTML pages replace that CSP with one that allows their own
//! nonce-tagged scripts and wasm (see `ctguard_app::shell`). Nothing but the static files may be
//! stored by a cache, and a panel served over HTTPS tells browsers to use nothing else.

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::request_path::is_static_file;

/// For responses that are not pages (JSON, events, files): nothing may run or embed them.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A year, and the panel's own subdomains: what browsers' preload rules and ASVS ask for. Not its
/// parent domain's other hosts, which the panel does not speak for.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// `over_https`: users reach the panel over HTTPS (`--secure-cookies`, behind a TLS-terminating
/// proxy), so the answers carry Strict-Transport-Security.
pub fn apply(router: Router, over_https: bool) -> Router {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not no-referrer: with it, browsers send `Origin: null` on form posts, hiding the very
        // origin the cross-origin guard checks. same-origin leaks nothing to other sites.
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    let mut router = router
        .layer(middleware::from_fn(no_store_unless_static))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        ));
    if over_https {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// Middleware: every answer but the static files (the same for everyone) is `no-store`. A page, a
/// server function's JSON, the CSV export or the live feed holds what a signed-in user may see:
/// neither a shared proxy nor the browser's cache (read by the next person at the keyboard, or by
/// the Back button after signing out) may keep it.
async fn no_store_unless_static(request: Request, next: Next) -> Response {
    let cacheable = is_static_file(request.uri().path());
    let mut response = next.run(request).await;
    if !cacheable {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
