//! The Blocks page: the blocks the helper holds, with who, why and when they expire; unblock and
//! block a target by hand (operators).

use ctguard_protocol::ActiveBlock;
use leptos::prelude::*;

use crate::{
    auth::Action,
    components::{
        block_form::BlockForm,
        operation_flow::{OperationFeedback, OperationFlow, clean_error},
    },
    format,
    operations::{Operation, active_blocks},
    session::current_user_query,
    trend,
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
                let may_block = matches!(user.await, Ok(Some(ref u)) if u.may(Action::Block));
                match blocks.await {
                    Ok(list) => {
                        view! {
                            <BlockTable list may_block flow/>
                            <Show when=move || may_block>
                                <section class="card" aria-label="Block a target">
                                    <h2>"Block a target"</h2>
                                    <BlockForm flow target=String::new() reason=String::new()/>
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
                    <th scope="col">"Journal"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|block| {
                        let target = block.target;
                        let left = block.expires_unix.saturating_sub(block.created_unix);
                        view! {
                            <tr data-testid=format!("block-{target}")>
                                <th scope="row">{target.to_string()}</th>
                                <td>{block.reason.to_string()}</td>
                                <td>{format!("{} from {}", block.actor, block.requested_by)}</td>
                                <td>{format::clock_utc(block.created_unix * 1000)}</td>
                                <td>
                                    {format!(
                                        "{} (for {})",
                                        format::clock_utc(block.expires_unix * 1000),
                                        trend::duration(left),
                                    )}
                                </td>
                                <td>{format!("#{}", block.journal_seq)}</td>
                                <td>
                                    <Show when=move || may_block>
                                        <button
                                            type="button"
                                            on:click=move |_| flow.ask(Operation::Unblock { target })
                                        >
                                            "Unblock…"
                                        </button>
                                    </Show>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
