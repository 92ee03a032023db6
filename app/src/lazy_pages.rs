//! The operator and admin pages as lazy routes: built with `cargo leptos build --split`, each one's
//! view code goes into a wasm chunk of its own that the browser fetches on the first visit, so the
//! first bundle holds only what the dashboard and the login page need (BENCHMARKS.md).
//!
//! Each route is a thin wrapper around the page's component: `data` loads nothing up front (the
//! pages start their own resources), and `view` is the split point. On the server `view` renders
//! at once and notes the chunk, so a page loaded directly gets a preload link for it and hydrates
//! once it has arrived (the frontend hydrates asynchronously).

use leptos::prelude::*;
use leptos_router::{LazyRoute, lazy_route};

use crate::pages::{
    audit::AuditPage, blocks::BlocksPage, suspicious::SuspiciousPage, tuning::TuningPage,
    users::UsersPage,
};

/// `/suspicious`: Suspicious sources (everyone reads; operators act).
#[derive(Debug)]
pub struct SuspiciousRoute;

#[lazy_route]
impl LazyRoute for SuspiciousRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <SuspiciousPage/> }.into_any()
    }
}

/// `/blocks`: the blocks the helper holds.
#[derive(Debug)]
pub struct BlocksRoute;

#[lazy_route]
impl LazyRoute for BlocksRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <BlocksPage/> }.into_any()
    }
}

/// `/tuning`: the allowlisted sysctls (admins apply).
#[derive(Debug)]
pub struct TuningRoute;

#[lazy_route]
impl LazyRoute for TuningRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <TuningPage/> }.into_any()
    }
}

/// `/users`: accounts and sessions (admins).
#[derive(Debug)]
pub struct UsersRoute;

#[lazy_route]
impl LazyRoute for UsersRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <UsersPage/> }.into_any()
    }
}

/// `/audit`: the audit log (admins).
#[derive(Debug)]
pub struct AuditRoute;

#[lazy_route]
impl LazyRoute for AuditRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <AuditPage/> }.into_any()
    }
}
