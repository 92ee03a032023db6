//! The account page (everyone's own): the second factor (enrolment with a QR code, confirmed by a
//! first code; recovery codes shown once), the password, and the user's sessions with a button to
//! end each. A login that must enrol a second factor is sent here and sees only the enrolment.

use leptos::prelude::*;

use crate::{
    account::{
        Enrolment, OwnAccount, OwnSession, begin_second_factor, change_own_password,
        confirm_second_factor, end_own_session, my_account, remove_second_factor,
    },
    utc,
};

/// Server function errors arrive as "error running server function: …"; show only the message.
fn clean_error(error: &ServerFnError) -> String {
    let text = error.to_string();
    text.rsplit(": ").next().unwrap_or(&text).to_owned()
}

#[component]
pub fn AccountPage() -> impl IntoView {
    // Bumped after every change, so the account is read again.
    let changed = RwSignal::new(0_u32);
    let account = Resource::new(move || changed.get(), |_| my_account());
    view! {
        <h1>"Your account"</h1>
        <Transition fallback=|| view! { <p class="muted">"Loading your account…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    Ok(account) => view! { <AccountSections account changed/> }.into_any(),
                    Err(failure) => {
                        view! { <p class="banner critical" role="alert">{clean_error(&failure)}</p> }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn AccountSections(account: OwnAccount, changed: RwSignal<u32>) -> impl IntoView {
    let due = account.enrolment_due;
    view! {
        <Show when=move || due>
            <p class="banner warning" role="alert" data-testid="enrolment-due">
                "Your role requires a second factor. Set one up to use the panel."
            </p>
        </Show>
        <SecondFactorSection account=account.clone() changed/>
        <Show when=move || !due>
            <PasswordSection/>
            <SessionsSection sessions=account.sessions.clone() changed/>
        </Show>
    }
}

#[component]
fn SecondFactorSection(account: OwnAccount, changed: RwSignal<u32>) -> impl IntoView {
    let begin = Action::new_unsync(|(): &()| begin_second_factor());
    let confirm = Action::new_unsync(|code: &String| confirm_second_factor(code.clone()));
    let remove = Action::new_unsync(|password: &String| remove_second_factor(password.clone()));
    let code = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let enrolled = account.second_factor;
    let required = account.second_factor_required;
    let left = account.recovery_codes_left;
    // Once confirmed, the recovery codes stay on screen until the page is left; the account is
    // not read again meanwhile (that would replace this section and hide them).
    let recovery = RwSignal::new(None::<Vec<String>>);
    Effect::new(move |_| {
        if let Some(Ok(codes)) = confirm.value().get() {
            recovery.set(Some(codes));
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = remove.value().get() {
            changed.update(|n| *n += 1);
        }
    });
    let error = move || {
        let failed = |value: Option<Result<_, ServerFnError>>| match value {
            Some(Err(failure)) => Some(clean_error(&failure)),
            _ => None,
        };
        failed(begin.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(confirm.value().get().map(|r| r.map(|_| ()))))
            .or_else(|| failed(remove.value().get()))
    };

    view! {
        <section class="card" data-testid="second-factor">
            <h2>"Second factor"</h2>
            {move || {
                error()
                    .map(|message| {
                        view! {
                            <p class="banner critical" role="alert" data-testid="second-factor-error">
                                {message}
                            </p>
                        }
                    })
            }}
            {move || match (recovery.get(), begin.value().get()) {
                (Some(codes), _) => view! { <RecoveryCodes codes/> }.into_any(),
                (None, Some(Ok(enrolment))) => {
                    view! { <EnrolmentForm enrolment code confirm/> }.into_any()
                }
                (None, _) if enrolled => {
                    view! {
                        <p data-testid="second-factor-state">
                            {format!(
                                "A second factor is in force. {left} recovery code{} left.",
                                if left == 1 { "" } else { "s" },
                            )}
                        </p>
                        <Show when=move || !required>
                            <form
                                class="inline-form"
                                on:submit=move |ev| {
                                    ev.prevent_default();
                                    remove.dispatch(password.get_untracked());
                                }
                            >
                                <label for="remove-password">"Your password"</label>
                                <input
                                    id="remove-password"
                                    type="password"
                                    autocomplete="current-password"
                                    required
                                    bind:value=password
                                />
                                <button type="submit">"Remove the second factor"</button>
                            </form>
                        </Show>
                    }
                        .into_any()
                }
                (None, _) => {
                    view! {
                        <p data-testid="second-factor-state">
                            "No second factor yet: signing in asks only for your password."
                        </p>
                        <button
                            type="button"
                            class="primary"
                            on:click=move |_| {
                                begin.dispatch(());
                            }
                        >
                            "Set up a second factor"
                        </button>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn EnrolmentForm(
    enrolment: Enrolment,
    code: RwSignal<String>,
    confirm: Action<String, Result<Vec<String>, ServerFnError>>,
) -> impl IntoView {
    view! {
        <p>
            "Scan this code with an authenticator app, or type the key below into it; then enter the six-digit code it shows."
        </p>
        <div class="qr" data-testid="enrolment-qr" inner_html=enrolment.qr_svg></div>
        <p>
            "Key: " <code data-testid="enrolment-secret">{enrolment.secret}</code>
        </p>
        <form
            class="inline-form"
            on:submit=move |ev| {
                ev.prevent_default();
                confirm.dispatch(code.get_untracked());
            }
        >
            <label for="enrolment-code">"Code from the app"</label>
            <input
                id="enrolment-code"
                inputmode="numeric"
                autocomplete="one-time-code"
                pattern="[0-9 ]*"
                required
                autofocus
                bind:value=code
            />
            <button type="submit" class="primary">"Confirm"</button>
        </form>
    }
}

#[component]
fn RecoveryCodes(codes: Vec<String>) -> impl IntoView {
    view! {
        <p class="banner info" role="status" data-testid="second-factor-enrolled">
            "The second factor is in force. Keep these recovery codes somewhere safe: each signs you in once without the app, and they are not shown again."
        </p>
        <ul class="plain" data-testid="recovery-codes">
            {codes.into_iter().map(|code| view! { <li><code>{code}</code></li> }).collect_view()}
        </ul>
        <a href="/">"Continue to the dashboard"</a>
    }
}

#[component]
fn PasswordSection() -> impl IntoView {
    let change = Action::new_unsync(|(current, new): &(String, String)| {
        change_own_password(current.clone(), new.clone())
    });
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let again = RwSignal::new(String::new());
    let mismatch = RwSignal::new(false);
    view! {
        <section class="card">
            <h2>"Password"</h2>
            {move || match change.value().get() {
                Some(Ok(ended)) => {
                    view! {
                        <p class="banner info" role="status" data-testid="password-changed">
                            {format!(
                                "Password changed; {ended} other session{} ended.",
                                if ended == 1 { "" } else { "s" },
                            )}
                        </p>
                    }
                        .into_any()
                }
                Some(Err(failure)) => {
                    view! {
                        <p class="banner critical" role="alert" data-testid="password-error">
                            {clean_error(&failure)}
                        </p>
                    }
                        .into_any()
                }
                None => ().into_any(),
            }}
            <Show when=move || mismatch.get()>
                <p class="banner critical" role="alert">"The new passwords differ."</p>
            </Show>
            <form
                class="stack"
                on:submit=move |ev| {
                    ev.prevent_default();
                    let (new_text, again_text) = (new.get_untracked(), again.get_untracked());
                    mismatch.set(new_text != again_text);
                    if new_text == again_text {
                        change.dispatch((current.get_untracked(), new_text));
                    }
                }
            >
                <label for="current-password">"Current password"</label>
                <input
                    id="current-password"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=current
                />
                <label for="new-own-password">"New password (12+ characters, not a common one)"</label>
                <input
                    id="new-own-password"
                    type="password"
                    autocomplete="new-password"
                    minlength="12"
                    required
                    bind:value=new
                />
                <label for="new-own-password-again">"New password again"</label>
                <input
                    id="new-own-password-again"
                    type="password"
                    autocomplete="new-password"
                    required
                    bind:value=again
                />
                <button type="submit" class="primary">"Change password"</button>
            </form>
        </section>
    }
}

#[component]
fn SessionsSection(sessions: Vec<OwnSession>, changed: RwSignal<u32>) -> impl IntoView {
    let end = Action::new_unsync(|id: &String| end_own_session(id.clone()));
    Effect::new(move |_| {
        if let Some(Ok(())) = end.value().get() {
            changed.update(|n| *n += 1);
        }
    });
    view! {
        <section class="card">
            <h2>"Your sessions"</h2>
            {move || {
                end.value()
                    .get()
                    .and_then(Result::err)
                    .map(|failure| {
                        view! { <p class="banner critical" role="alert">{clean_error(&failure)}</p> }
                    })
            }}
            <table class="data" data-testid="own-sessions">
                <thead>
                    <tr>
                        <th scope="col">"Browser"</th>
                        <th scope="col">"Address"</th>
                        <th scope="col">"Started (UTC)"</th>
                        <th scope="col">"Last seen (UTC)"</th>
                        <th scope="col">"End"</th>
                    </tr>
                </thead>
                <tbody>
                    {sessions
                        .into_iter()
                        .map(|session| {
                            let id = session.id.clone();
                            let label = if session.current {
                                "End (signs you out here)"
                            } else {
                                "End"
                            };
                            view! {
                                <tr data-current=session.current.to_string()>
                                    <td>
                                        {session.user_agent}
                                        {session.current.then_some(" (this browser)")}
                                    </td>
                                    <td>{session.client_addr}</td>
                                    <td>{utc::datetime(session.created_at)}</td>
                                    <td>{utc::datetime(session.last_seen)}</td>
                                    <td>
                                        <button
                                            type="button"
                                            on:click=move |_| {
                                                end.dispatch(id.clone());
                                            }
                                        >
                                            {label}
                                        </button>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}
