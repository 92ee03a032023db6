//! Response headers every answer carries: no sniffing, no framing, no referrer, and a locked-down
//! default Content-Security-Policy. HTML pages replace that CSP with one that allows their own
//! nonce-tagged scripts and wasm (see `ctguard_app::shell`).

use axum::{
    Router,
    http::{HeaderName, HeaderValue, header},
};
use tower_http::set_header::SetResponseHeaderLayer;

/// For responses that are not pages (JSON, events, files): nothing may run or embed them.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

pub fn apply(router: Router) -> Router {
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
    let mut router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DEFAULT_CSP),
    ));
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}
