//! The Users page (admins): accounts, their roles and sessions; add, change role, disable, end a
//! session. Every change asks for confirmation first and is audited by the server.

use leptos::prelude::*;

use crate::{
    auth::Role,
    format,
    users::{Account, AddUser, EndSession, SetDisabled, SetRole, list_accounts},
};

#[component]
pub fn UsersPage() -> impl IntoView {
    let add = ServerAction::<AddUser>::new();
    let set_role = ServerAction::<SetRole>::new();
    let set_disabled = ServerAction::<SetDisabled>::new();
    let end_session = ServerAction::<EndSession>::new();
    let accounts = Resource::new(
        move || {
            (
                add.version().get(),
                set_role.version().get(),
                set_disabled.version().get(),
                end_session.version().get(),
            )
        },
        |_| list_accounts(),
    );
    let last_error = move || {
        [
            add.value().get().and_then(Result::err),
            set_role.value().get().and_then(Result::err),
            set_disabled.value().get().and_then(Result::err),
            end_session.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|error| clean_error(&error.to_string()))
    };
    let actions = Actions {
        set_role,
        set_disabled,
        end_session,
    };

    view! {
        <h1>"Users"</h1>
        {move || {
            last_error()
                .map(|message| {
                    view! {
                        <p class="banner critical" role="alert" data-testid="users-error">
                            {message}
                        </p>
                    }
                })
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading accounts…"</p> }>
            {move || Suspend::new(async move {
                match accounts.await {
                    Ok(list) => view! { <AccountTable list actions/> }.into_any(),
                    Err(error) => {
                        view! {
                            <p class="banner critical" role="alert">
                                {clean_error(&error.to_string())}
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
        <AddUserForm add/>
    }
}

/// Server function errors arrive as "error running server function: …"; show only the message.
fn clean_error(text: &str) -> String {
    text.rsplit(": ").next().unwrap_or(text).to_owned()
}

#[derive(Clone, Copy)]
struct Actions {
    set_role: ServerAction<SetRole>,
    set_disabled: ServerAction<SetDisabled>,
    end_session: ServerAction<EndSession>,
}

#[component]
fn AccountTable(list: Vec<Account>, actions: Actions) -> impl IntoView {
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
                {list
                    .into_iter()
                    .map(|account| view! { <AccountRow account actions/> })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// What the confirmation strip under a row is asking about.
#[derive(Clone, PartialEq)]
enum Pending {
    Role(Role),
    Disable(bool),
    EndSession(String),
}

#[component]
fn AccountRow(account: Account, actions: Actions) -> impl IntoView {
    let pending = RwSignal::new(None::<Pending>);
    let chosen_role = RwSignal::new(account.role);
    let username = account.username.clone();
    let current_role = account.role;
    let disabled = account.disabled;

    let describe = {
        let username = username.clone();
        move |p: &Pending| match p {
            Pending::Role(role) => {
                format!("Change {username} from {current_role} to {role}? Their sessions end now.")
            }
            Pending::Disable(true) => format!("Disable {username}? Their sessions end now."),
            Pending::Disable(false) => format!("Enable {username} again?"),
            Pending::EndSession(_) => format!("End this session of {username}?"),
        }
    };
    let confirm = {
        let username = username.clone();
        move |_| {
            let Some(p) = pending.get_untracked() else {
                return;
            };
            match p {
                Pending::Role(role) => {
                    actions.set_role.dispatch(SetRole {
                        username: username.clone(),
                        role,
                    });
                }
                Pending::Disable(disabled) => {
                    actions.set_disabled.dispatch(SetDisabled {
                        username: username.clone(),
                        disabled,
                    });
                }
                Pending::EndSession(session_id) => {
                    actions.end_session.dispatch(EndSession { session_id });
                }
            }
            pending.set(None);
        }
    };

    let sessions = account.sessions.clone();
    view! {
        <tr data-testid=format!("user-{username}")>
            <th scope="row">{username.clone()}</th>
            <td>
                <label class="visually-hidden" for=format!("role-{username}")>
                    {format!("Role of {username}")}
                </label>
                <select
                    id=format!("role-{username}")
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
                <button
                    type="button"
                    on:click=move |_| {
                        let role = chosen_role.get_untracked();
                        if role != current_role {
                            pending.set(Some(Pending::Role(role)));
                        }
                    }
                >
                    "Change role"
                </button>
            </td>
            <td>{if disabled { "disabled" } else { "active" }}</td>
            <td>
                <ul class="plain">
                    {sessions
                        .into_iter()
                        .map(|session| {
                            let id = session.id.clone();
                            view! {
                                <li>
                                    {format!(
                                        "{} since {} (last seen {})",
                                        session.client_addr,
                                        format::clock_utc(session.created_at.max(0) as u64 * 1000),
                                        format::clock_utc(session.last_seen.max(0) as u64 * 1000),
                                    )}
                                    " "
                                    <button
                                        type="button"
                                        on:click=move |_| pending.set(Some(Pending::EndSession(id.clone())))
                                    >
                                        "End"
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </td>
            <td>
                <button type="button" on:click=move |_| pending.set(Some(Pending::Disable(!disabled)))>
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
            </td>
        </tr>
        {move || {
            let describe = describe.clone();
            let confirm = confirm.clone();
            pending
                .get()
                .map(|p| {
                    view! {
                        <tr class="confirm-row">
                            <td colspan="5">
                                <div class="confirm" role="alertdialog" aria-label="Confirm the change">
                                    <span>{describe(&p)}</span>
                                    <button type="button" class="primary" on:click=confirm>"Confirm"</button>
                                    <button type="button" on:click=move |_| pending.set(None)>"Cancel"</button>
                                </div>
                            </td>
                        </tr>
                    }
                })
        }}
    }
}

#[component]
fn AddUserForm(add: ServerAction<AddUser>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Add a user"</h2>
            <ActionForm action=add attr:class="inline-form">
                <label for="new-username">"Username"</label>
                <input id="new-username" name="username" autocomplete="off" required/>
                <label for="new-password">"Password (12+ characters)"</label>
                <input id="new-password" name="password" type="password" autocomplete="new-password" minlength="12" required/>
                <label for="new-role">"Role"</label>
                <select id="new-role" name="role">
                    <option value="viewer">"viewer"</option>
                    <option value="operator">"operator"</option>
                    <option value="admin">"admin"</option>
                </select>
                <button type="submit" class="primary">"Add user"</button>
            </ActionForm>
        </section>
    }
}
