//! The Blocks page: the blocks the helper holds, with who, why and when they expire; unblock,
//! extend, and block a target by hand (operators).

use ctguard_protocol::ActiveBlock;
use leptos::prelude::*;

use crate::{
    auth::Permission,
    components::operation_flow::{OperationFeedback, OperationFlow, clean_error},
    format,
    operators::block_form::BlockForm,
    operators::block_scope::BlockScope,
    operators::clock,
    operators::operations::{DURATIONS, Operation, active_blocks},
    session::current_user_query,
};

#[component]
pub fn BlocksPage() -> impl IntoView {
    let flow = OperationFlow::new();
    let blocks = Resource::new(move || flow.applied(), |_| active_blocks());
    let user = Resource::new(|| (), |_| current_user_query());
    view! {
        <h1>"Blocks"</h1>
        <OperationFeedback flow/>
        <Transition fallback=|| view! { <p class="muted">"Asking the helper…"</p> }>
            {move || Suspend::new(async move {
                let may_block = matches!(user.await, Ok(Some(ref u)) if u.may(Permission::Block));
                match blocks.await {
                    Ok(list) => {
                        view! {
                            <BlockTable list may_block flow/>
                            <Show when=move || may_block>
                                <section class="card" aria-label="Block a target">
                                    <h2>"Block a target"</h2>
                                    <BlockForm
                                        flow
                                        scope=BlockScope::from_address("")
                                        reason=String::new()
                                    />
                                </section>
                            </Show>
                        }
                            .into_any()
                    }
                    Err(error) => {
                        view! { <p class="banner critical" role="alert">{clean_error(&error)}</p> }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn BlockTable(list: Vec<ActiveBlock>, may_block: bool, flow: OperationFlow) -> impl IntoView {
    let now = clock::ticking_now();
    if list.is_empty() {
        return view! { <p class="muted" data-testid="no-blocks">"No active blocks."</p> }
            .into_any();
    }
    view! {
        <table class="data" data-testid="blocks">
            <thead>
                <tr>
                    <th scope="col">"Target"</th>
                    <th scope="col">"Why"</th>
                    <th scope="col">"Who"</th>
                    <th scope="col">"Since"</th>
                    <th scope="col">"Expires"</th>
                    <th scope="col">"Dropped"</th>
                    <th scope="col">"Journal"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|block| {
                        let target = block.target;
                        let expires = block.expires_unix;
                        let left = move || expires.saturating_sub(now.get());
                        let dropped = block
                            .packets_dropped
                            .map_or_else(|| "—".to_owned(), |n| format!("{} packets", format::thousands(n)));
                        view! {
                            <tr data-testid=format!("block-{target}")>
                                <th scope="row">{target.to_string()}</th>
                                <td>{block.reason.to_string()}</td>
                                <td>{format!("{} from {}", block.actor, block.requested_by)}</td>
                                <td>{format::clock_utc(block.created_unix * 1000)}</td>
                                <td>
                                    {format::clock_utc(expires * 1000)}
                                    <br/>
                                    <small data-testid="countdown">
                                        {move || match left() {
                                            0 => "expired".to_owned(),
                                            secs => format!("in {}", format::countdown(secs)),
                                        }}
                                    </small>
                                </td>
                                <td data-testid="dropped">{dropped}</td>
                                <td>{format!("#{}", block.journal_seq)}</td>
                                <td class="actions">
                                    <Show when=move || may_block>
                                        <button
                                            type="button"
                                            on:click=move |_| flow.ask(Operation::Unblock { target })
                                        >
                                            "Unblock…"
                                        </button>
                                        <ExtendForm
                                            target=target.to_string()
                                            reason=block.reason.to_string()
                                            flow
                                        />
                                    </Show>
                                </td>
                            </tr>
                        }
                            .into_any()
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Extends a block: the helper renews a block of the same target, so it runs for the chosen
/// duration from now (the preview says until when).
#[component]
fn ExtendForm(target: String, reason: String, flow: OperationFlow) -> impl IntoView {
    let duration = RwSignal::new(DURATIONS[1].0);
    let id = format!(
        "extend-{}",
        target.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let label = format!("Extend {target} for");
    view! {
        <form
            class="extend-form"
            on:submit=move |ev| {
                ev.prevent_default();
                flow.ask(Operation::Block {
                    target: target.clone(),
                    duration_secs: duration.get_untracked(),
                    reason: reason.clone(),
                });
            }
        >
            <label for=id.clone() class="visually-hidden">{label}</label>
            <select
                id=id
                on:change=move |ev| {
                    if let Ok(secs) = event_target_value(&ev).parse::<u64>() {
                        duration.set(secs);
                    }
                }
            >
                {DURATIONS
                    .iter()
                    .map(|(secs, label)| {
                        view! {
                            <option value=secs.to_string() selected=*secs == DURATIONS[1].0>
                                {format!("for {label}")}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <button type="submit">"Extend…"</button>
        </form>
    }
    .into_any()
}
