//! The operator and admin pages as one lazy route: built with `cargo leptos build --split`, their
//! view code goes into a wasm chunk that the browser fetches on the first visit to any of them, so
//! the first bundle holds only what the dashboard and the login page need (BENCHMARKS.md).
//!
//! The route is a thin wrapper around the pages' components: `data` only notes which page the path
//! names (the pages start their own resources), and `view` is the split point. On the server `view` renders
//! at once and notes the chunk, so a page loaded directly gets a preload link for it and hydrates
//! once it has arrived (the frontend hydrates asynchronously).

use leptos::prelude::*;
use leptos_router::{LazyRoute, lazy_route};

use crate::{
    account::page::AccountPage,
    admin::{audit::page::AuditPage, users::page::UsersPage},
    operators::{blocks::BlocksPage, suspicious::SuspiciousPage, tuning::page::TuningPage},
};

/// Which staff page a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StaffPage {
    Suspicious,
    Blocks,
    Tuning,
    Users,
    Audit,
    Account,
}

impl StaffPage {
    fn at(path: &str) -> Option<Self> {
        match path.trim_end_matches('/') {
            "/suspicious" => Some(Self::Suspicious),
            "/blocks" => Some(Self::Blocks),
            "/tuning" => Some(Self::Tuning),
            "/users" => Some(Self::Users),
            "/audit" => Some(Self::Audit),
            "/account" => Some(Self::Account),
            _ => None,
        }
    }
}

/// Every staff page behind one split point: the pages of [`StaffPage`] share one chunk, fetched
/// on the first visit to any of them. One chunk rather than one per page: the splitter lays out
/// each chunk's read-only data on its own alignment boundary, and with a chunk per page (and one
/// per set of pages sharing code, about thirty) the padding outgrew the original data segment,
/// whereupon the tool kept all read-only data, the pages' strings included, in the first bundle.
#[derive(Debug)]
pub struct StaffRoute {
    page: Option<StaffPage>,
}

#[lazy_route]
impl LazyRoute for StaffRoute {
    fn data() -> Self {
        let path = leptos_router::hooks::use_location()
            .pathname
            .get_untracked();
        Self {
            page: StaffPage::at(&path),
        }
    }

    fn view(this: Self) -> AnyView {
        match this.page {
            Some(StaffPage::Suspicious) => view! { <SuspiciousPage/> }.into_any(),
            Some(StaffPage::Blocks) => view! { <BlocksPage/> }.into_any(),
            Some(StaffPage::Tuning) => view! { <TuningPage/> }.into_any(),
            Some(StaffPage::Users) => view! { <UsersPage/> }.into_any(),
            Some(StaffPage::Audit) => view! { <AuditPage/> }.into_any(),
            Some(StaffPage::Account) => view! { <AccountPage/> }.into_any(),
            None => view! { <p class="not-found">"Page not found."</p> }.into_any(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_staff_path_names_its_page() {
        assert_eq!(StaffPage::at("/suspicious"), Some(StaffPage::Suspicious));
        assert_eq!(StaffPage::at("/blocks/"), Some(StaffPage::Blocks));
        assert_eq!(StaffPage::at("/audit"), Some(StaffPage::Audit));
        assert_eq!(StaffPage::at("/"), None);
    }
}
