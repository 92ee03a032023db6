//! The Users page (admins): accounts, their roles and sessions; add, change role, disable, end a
//! session. Every change is previewed by the server and carried out only after Confirm.

use leptos::prelude::*;

use crate::{
    admin::users::{Account, UserChange, apply_user_change, list_accounts, preview_user_change},
    auth::Role,
    components::confirm_dialog::ConfirmDialog,
    confirm::Preview,
    format,
};

/// Server function errors arrive as "error running server function: …"; show only the message.
fn clean_error(error: &ServerFnError) -> String {
    let text = error.to_string();
    text.rsplit(": ").next().unwrap_or(&text).to_owned()
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let preview = Action::new_unsync(|change: &UserChange| {
        let change = change.clone();
        async move {
            let result = preview_user_change(change.clone()).await;
            (change, result)
        }
    });
    let apply = Action::new_unsync(|(token, change): &(String, UserChange)| {
        apply_user_change(token.clone(), change.clone())
    });
    let accounts = Resource::new(move || apply.version().get(), |_| list_accounts());
    let pending = RwSignal::new(None::<(UserChange, Preview)>);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);

    Effect::new(move |_| match preview.value().get() {
        Some((change, Ok(shown))) => {
            error.set(None);
            pending.set(Some((change, shown)));
        }
        Some((_, Err(failure))) => error.set(Some(clean_error(&failure))),
        None => {}
    });
    Effect::new(move |_| match apply.value().get() {
        Some(Ok(())) => {
            error.set(None);
            notice.set(Some("Done.".into()));
        }
        Some(Err(failure)) => error.set(Some(clean_error(&failure))),
        None => {}
    });
    let ask = Callback::new(move |change: UserChange| {
        notice.set(None);
        preview.dispatch(change);
    });

    view! {
        <h1>"Users"</h1>
        {move || {
            error
                .get()
                .map(|message| {
                    view! {
                        <p class="banner critical" role="alert" data-testid="users-error">
                            {message}
                        </p>
                    }
                })
        }}
        {move || {
            notice.get().map(|message| view! { <p class="banner info" role="status">{message}</p> })
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading accounts…"</p> }>
            {move || Suspend::new(async move {
                match accounts.await {
                    Ok(list) => view! { <AccountTable list ask/> }.into_any(),
                    Err(failure) => {
                        view! { <p class="banner critical" role="alert">{clean_error(&failure)}</p> }
                            .into_any()
                    }
                }
            })}
        </Transition>
        <AddUserForm ask/>
        {move || {
            pending
                .get()
                .map(|(change, shown)| {
                    view! {
                        <ConfirmDialog
                            preview=shown
                            on_confirm=Callback::new(move |token: String| {
                                apply.dispatch((token, change.clone()));
                                pending.set(None);
                            })
                            on_cancel=Callback::new(move |()| pending.set(None))
                        />
                    }
                })
        }}
    }
}

#[component]
fn AccountTable(list: Vec<Account>, ask: Callback<UserChange>) -> impl IntoView {
    view! {
        <table class="data" data-testid="accounts">
            <thead>
                <tr>
                    <th scope="col">"User"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Sessions"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|account| view! { <AccountRow account ask/> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn AccountRow(account: Account, ask: Callback<UserChange>) -> impl IntoView {
    let username = account.username.clone();
    let current_role = account.role;
    let chosen_role = RwSignal::new(account.role);
    let disabled = account.disabled;
    let select_id = format!("role-{username}");
    let for_role = username.clone();
    let for_state = username.clone();

    view! {
        <tr data-testid=format!("user-{username}")>
            <th scope="row">{username.clone()}</th>
            <td>
                <label class="visually-hidden" for=select_id.clone()>
                    {format!("Role of {username}")}
                </label>
                <select
                    id=select_id
                    on:change=move |ev| {
                        if let Ok(role) = event_target_value(&ev).parse::<Role>() {
                            chosen_role.set(role);
                        }
                    }
                >
                    {Role::ALL
                        .into_iter()
                        .map(|role| {
                            view! {
                                <option value=role.as_str() selected=role == current_role>
                                    {role.as_str()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                " "
                <button
                    type="button"
                    on:click=move |_| {
                        ask.run(UserChange::SetRole {
                            username: for_role.clone(),
                            role: chosen_role.get_untracked(),
                        })
                    }
                >
                    "Change role"
                </button>
            </td>
            <td>{if disabled { "disabled" } else { "active" }}</td>
            <td>
                <ul class="plain">
                    {account
                        .sessions
                        .into_iter()
                        .map(|session| {
                            let id = session.id.clone();
                            view! {
                                <li>
                                    {format!(
                                        "{} since {}, last seen {}",
                                        session.client_addr,
                                        format::clock_utc(epoch_ms(session.created_at)),
                                        format::clock_utc(epoch_ms(session.last_seen)),
                                    )}
                                    " "
                                    <button
                                        type="button"
                                        on:click=move |_| {
                                            ask.run(UserChange::EndSession { session_id: id.clone() })
                                        }
                                    >
                                        "End session"
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </td>
            <td>
                <button
                    type="button"
                    on:click=move |_| {
                        ask.run(UserChange::SetDisabled {
                            username: for_state.clone(),
                            disabled: !disabled,
                        })
                    }
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
            </td>
        </tr>
    }
}

fn epoch_ms(seconds: i64) -> u64 {
    u64::try_from(seconds).unwrap_or(0).saturating_mul(1000)
}

#[component]
fn AddUserForm(ask: Callback<UserChange>) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    view! {
        <section class="card">
            <h2>"Add a user"</h2>
            <form
                class="inline-form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    ask.run(UserChange::Add {
                        username: username.get_untracked(),
                        password: password.get_untracked(),
                        role: role.get_untracked(),
                    });
                }
            >
                <label for="new-username">"Username"</label>
                <input id="new-username" autocomplete="off" required bind:value=username/>
                <label for="new-password">"Password (12+ characters)"</label>
                <input
                    id="new-password"
                    type="password"
                    autocomplete="new-password"
                    minlength="12"
                    required
                    bind:value=password
                />
                <label for="new-role">"Role"</label>
                <select
                    id="new-role"
                    on:change=move |ev| {
                        if let Ok(chosen) = event_target_value(&ev).parse::<Role>() {
                            role.set(chosen);
                        }
                    }
                >
                    {Role::ALL
                        .into_iter()
                        .map(|r| view! { <option value=r.as_str()>{r.as_str()}</option> })
                        .collect_view()}
                </select>
                <button type="submit" class="primary">"Add user…"</button>
            </form>
        </section>
    }
}
