//! The login page: a plain form that posts to the server, so it works before the wasm bundle loads
//! and entirely by keyboard.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::session::{LoginError, SIGN_IN_PATH};

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || {
        query
            .read()
            .get("error")
            .as_deref()
            .and_then(LoginError::from_code)
    };
    let signed_out = move || query.read().get("signed_out").is_some();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".to_owned());

    view! {
        <section class="login-card">
            <h1>"Sign in"</h1>
            <Show when=signed_out>
                <p class="banner info" role="status">"You are signed out."</p>
            </Show>
            {move || {
                error()
                    .map(|error| {
                        view! {
                            <p class="banner critical" role="alert" data-testid="login-error">
                                {error.message()}
                            </p>
                        }
                    })
            }}
            <form method="post" action=SIGN_IN_PATH class="stack">
                <label for="username">"Username"</label>
                <input
                    id="username"
                    name="username"
                    autocomplete="username"
                    autocapitalize="none"
                    spellcheck="false"
                    required
                    autofocus
                />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                />
                <input type="hidden" name="next" prop:value=next/>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </section>
    }
}
