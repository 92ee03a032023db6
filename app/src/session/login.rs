//! The login page: a plain form that posts to the server, so it works before the wasm bundle loads
//! and entirely by keyboard. For a user with a second factor the server sends the browser back
//! here for the second step (`?step=code`), which asks for the code the same way.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::session::{CODE_STEP, LoginError, SECOND_FACTOR_PATH, SIGN_IN_PATH};

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
    let code_step = move || query.read().get("step").as_deref() == Some(CODE_STEP);

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
            <Show when=code_step fallback=move || view! { <PasswordForm next=next()/> }>
                <CodeForm/>
            </Show>
        </section>
    }
}

#[component]
fn PasswordForm(next: String) -> impl IntoView {
    view! {
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
    }
}

/// The second step: the code from the authenticator app, or one of the recovery codes. Where to
/// go afterwards the server kept from the first step.
#[component]
fn CodeForm() -> impl IntoView {
    view! {
        <p>"Enter the code your authenticator app shows, or one of your recovery codes."</p>
        <form method="post" action=SECOND_FACTOR_PATH class="stack">
            <label for="code">"Code"</label>
            <input
                id="code"
                name="code"
                autocomplete="one-time-code"
                autocapitalize="none"
                spellcheck="false"
                required
                autofocus
            />
            <button type="submit" class="primary">"Continue"</button>
        </form>
        <p>
            <a href="/login">"Start again with the password"</a>
        </p>
    }
}
