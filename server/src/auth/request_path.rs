//! A request's path as routing and the file service read it: a path with dot segments or encoded
//! separators is refused before anything routes it, and only plain file names under `/pkg/` are
//! static files.

use axum::{
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use percent_encoding::percent_decode_str;

/// The built site's files (wasm, JavaScript, CSS, wasm-bindgen's snippets) and the favicon: the
/// same for everyone. Every segment under `/pkg/` is a plain name (letters, digits, `-`, `_`, `.`,
/// not starting with a dot), so no spelling of `..` or of a hidden file is one.
pub fn is_static_file(path: &str) -> bool {
    if path == "/favicon.svg" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/pkg/") else {
        return false;
    };
    rest.split('/').all(is_plain_name)
}

fn is_plain_name(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a path holds a segment that some reader would take for another path than the router
/// does: `.` or `..` in any percent-encoding (a browser and a file service resolve them, the router
/// does not), or a separator hidden in one (`%2F`, `%5C`, a raw backslash).
pub fn is_ambiguous(path: &str) -> bool {
    path.split('/').any(|segment| {
        if segment.contains('\\') {
            return true;
        }
        let decoded = percent_decode_str(segment).collect::<Vec<u8>>();
        decoded == b"." || decoded == b".." || decoded.iter().any(|&b| b == b'/' || b == b'\\')
    })
}

/// Middleware, outside routing and sessions: an ambiguous path is refused with 400 before any
/// route, file or page sees it.
pub async fn refuse_ambiguous_paths(request: Request, next: Next) -> Response {
    if is_ambiguous(request.uri().path()) {
        tracing::info!(path = ?request.uri().path(), "refused a path with dot segments");
        return (StatusCode::BAD_REQUEST, "Bad request.").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_under_pkg_are_static_files() {
        for path in [
            "/pkg/ctguard.wasm",
            "/pkg/ctguard.js",
            "/pkg/snippets/ctguard-app-1a2b/inline0.js",
            "/favicon.svg",
        ] {
            assert!(is_static_file(path), "{path}");
        }
        for path in [
            "/pkg/../",
            "/pkg/../users",
            "/pkg/%2e%2e/users",
            "/pkg/./ctguard.js",
            "/pkg/.hidden",
            "/pkg/",
            "/pkg//ctguard.js",
            "/pkg/a%20b.js",
            "/pkg",
            "/favicon.svg/",
            "/users",
        ] {
            assert!(!is_static_file(path), "{path}");
        }
    }

    #[test]
    fn dot_segments_in_any_spelling_and_hidden_separators_are_ambiguous() {
        for path in [
            "/pkg/../",
            "/./",
            "/users/.",
            "/%2e%2e/users",
            "/%2E./users",
            "/.%2e/users",
            "/pkg/%2e/ctguard.js",
            "/pkg%2f..%2fusers",
            "/pkg/..%5cusers",
            "/pkg\\..\\users",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        for path in [
            "/",
            "/users",
            "/pkg/ctguard.js",
            "/api/live",
            "/a..b",
            "/...",
            "/.well-known",
        ] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }
}
