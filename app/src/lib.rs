//! The ctguard UI: the HTML shell, the router and the pages, rendered on the server and hydrated in
//! the browser from the same code.

pub mod components;
pub mod format;
pub mod history;
pub mod live;
pub mod pages;
pub mod seed;
pub mod thresholds;
pub mod trend;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

use crate::pages::dashboard::Dashboard;

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    // Set once the wasm bundle has taken over the page; tests and users can tell a live page from
    // a static one by it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Stylesheet id="leptos" href="/pkg/ctguard.css"/>
        <Title text="ctguard"/>
        <header class="topbar">
            <a class="brand" href="/">"ctguard"</a>
            <span class="tagline">"connection-tracking table guard"</span>
        </header>
        <Router>
            <main data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=Dashboard/>
                </Routes>
            </main>
        </Router>
    }
}
