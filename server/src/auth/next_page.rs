//! Where the browser goes after signing in: only to a page of the panel, whatever `next` says.
//!
//! `next` comes from a query string anyone can write into a link. It is read the way a browser
//! reads a `Location` (the WHATWG URL parser: tabs and newlines dropped, `\` as `/`, dot segments
//! resolved), against a base of our own, so what we check is what the browser would follow. It must
//! stay on that base's origin and, percent-decoded, name one of the panel's own pages; the browser
//! is then sent to that page's own spelling of its path, with the query as the parser wrote it.

use std::sync::Arc;

use ctguard_app::session::LOGIN_PATH;
use percent_encoding::percent_decode_str;
use url::Url;

/// Where a browser lands when `next` names no page of the panel.
pub const HOME: &str = "/";

/// Stands for the panel's own origin while `next` is resolved: never contacted, and reserved
/// (RFC 2606), so no `next` can name it by accident.
const BASE: &str = "http://panel.invalid/";

/// The panel's own pages (as the router lists them), the only places `next` may lead.
#[derive(Debug, Clone)]
pub struct PanelPages(Arc<[String]>);

impl PanelPages {
    pub fn new(paths: impl IntoIterator<Item = String>) -> Self {
        Self(paths.into_iter().collect())
    }

    /// The local URL (path and query) to send a browser to after signing in: the page `next`
    /// names, or [`HOME`] when it names none (another site, a script, a path the panel does not
    /// serve, the login page itself).
    pub fn after_sign_in(&self, next: &str) -> String {
        self.resolve(next).unwrap_or_else(|| HOME.to_owned())
    }

    fn resolve(&self, next: &str) -> Option<String> {
        // Only a path is taken; whatever else a URL can start with (a scheme, whitespace, a
        // relative segment) is refused before parsing.
        if !next.starts_with('/') {
            return None;
        }
        let base = Url::parse(BASE).ok()?;
        let target = base.join(next).ok()?;
        // `//host`, `/\host` and `/<tab>/host` all parse to another host.
        if target.origin() != base.origin() {
            return None;
        }
        let path = percent_decode_str(target.path()).decode_utf8().ok()?;
        let page = self
            .0
            .iter()
            .find(|page| **page == *path && page.as_str() != LOGIN_PATH)?;
        Some(match target.query() {
            Some(query) => format!("{page}?{query}"),
            None => page.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> PanelPages {
        PanelPages::new(["/", "/login", "/users", "/audit"].map(str::to_owned))
    }

    #[test]
    fn pages_of_the_panel_are_followed_with_their_query() {
        let pages = pages();
        assert_eq!(pages.after_sign_in("/users"), "/users");
        assert_eq!(pages.after_sign_in("/"), "/");
        assert_eq!(
            pages.after_sign_in("/audit?actor=ada&outcome=refused"),
            "/audit?actor=ada&outcome=refused"
        );
        assert_eq!(pages.after_sign_in("/us%65rs"), "/users", "decoded");
        assert_eq!(pages.after_sign_in("/audit/../users"), "/users");
        assert_eq!(pages.after_sign_in("/users#top"), "/users");
    }

    #[test]
    fn everything_else_goes_home() {
        let pages = pages();
        for next in [
            "",
            "users",
            "//evil.example/",
            "///evil.example/",
            "/\\evil.example/",
            "/\\/evil.example/",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/%09/evil.example/",
            "/%2F%2Fevil.example/",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "javascript:alert(1)",
            " /users",
            "https://evil.example/users",
            "http://panel.invalid/users",
            "/login",
            "/no-such-page",
            "/users/",
            "/users%00",
        ] {
            assert_eq!(pages.after_sign_in(next), HOME, "{next:?}");
        }
    }
}
