//! The ctguard UI: the HTML shell, the router and the pages, rendered on the server and hydrated in
//! the browser from the same code.

pub mod account;
pub mod admin;
pub mod auth;
pub mod components;
pub mod confirm;
pub mod dashboard;
pub mod format;
pub mod lazy_pages;
pub mod operators;
pub mod session;
pub mod utc;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    Lazy, StaticSegment,
    components::{FlatRoutes, Route, Router},
};

use crate::{
    auth::Permission,
    dashboard::page::Dashboard,
    lazy_pages::StaffRoute,
    session::{ACCOUNT_PATH, LOGOUT_PATH, current_user_query, login::LoginPage},
};

/// The Content-Security-Policy of a page: scripts only from this origin or carrying this
/// response's nonce (the hydration script), wasm allowed, nothing framed, forms only to us.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) && let Ok(value) = axum::http::HeaderValue::from_str(&page_csp(&nonce.to_string()))
    {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Whether the whole page has hydrated, the chunk of a lazy page included: the browser's entry
/// point (frontend/) provides it and sets it once hydration has finished; the server renders it
/// unset. Tests and users can tell a live page from a static one by `main[data-hydrated]`.
#[derive(Debug, Clone, Default)]
pub struct Hydrated(pub ArcRwSignal<bool>);

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let hydrated = use_context::<Hydrated>().unwrap_or_default().0;

    view! {
        <Stylesheet id="leptos" href="/pkg/ctguard.css"/>
        <Title text="ctguard"/>
        <header class="topbar">
            <a class="brand" href="/">"ctguard"</a>
            <Transition fallback=|| ()>
                <Nav/>
            </Transition>
        </header>
        <Router>
            <main data-hydrated=move || hydrated.get().to_string()>
                <FlatRoutes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=Dashboard/>
                    <Route path=StaticSegment("login") view=LoginPage/>
                    // The dashboard and the login page are in the first bundle; the rest load on
                    // demand (lazy_pages.rs).
                    <Route path=StaticSegment("suspicious") view={Lazy::<StaffRoute>::new()}/>
                    <Route path=StaticSegment("blocks") view={Lazy::<StaffRoute>::new()}/>
                    <Route path=StaticSegment("tuning") view={Lazy::<StaffRoute>::new()}/>
                    <Route path=StaticSegment("users") view={Lazy::<StaffRoute>::new()}/>
                    <Route path=StaticSegment("audit") view={Lazy::<StaffRoute>::new()}/>
                    <Route path=StaticSegment("account") view={Lazy::<StaffRoute>::new()}/>
                </FlatRoutes>
            </main>
        </Router>
    }
}

/// The links a signed-in user may follow, who they are, and the sign-out button. Links the role
/// cannot use are not shown; the server refuses them anyway.
#[component]
fn Nav() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user_query());
    move || {
        Suspend::new(async move {
            let Ok(Some(user)) = user.await else {
                return view! { <span class="tagline">"connection-tracking table guard"</span> }
                    .into_any();
            };
            let admin = user.may(Permission::ManageUsers);
            let auditor = user.may(Permission::ViewAudit);
            let badge = format!("{} · {}", user.username, user.role);
            view! {
                <nav aria-label="Main">
                    <a href="/">"Dashboard"</a>
                    <a href="/suspicious">"Suspicious sources"</a>
                    <a href="/blocks">"Blocks"</a>
                    <a href="/tuning">"Tuning"</a>
                    <Show when=move || admin>
                        <a href="/users">"Users"</a>
                    </Show>
                    <Show when=move || auditor>
                        <a href="/audit">"Audit"</a>
                    </Show>
                    <a href=ACCOUNT_PATH>"Your account"</a>
                </nav>
                <span class="who" data-testid="who" data-role=user.role.as_str()>{badge}</span>
                <form method="post" action=LOGOUT_PATH class="signout">
                    <button type="submit">"Sign out"</button>
                </form>
            }
            .into_any()
        })
    }
}
