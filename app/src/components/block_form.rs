//! The block form: the target in the protocol's own words, a duration and a reason. Submitting asks
//! for the server's preview, which parses and checks the target (and says what is wrong with it);
//! the parser is not shipped to the browser, to keep the bundle small.

use leptos::prelude::*;

use crate::{
    components::operation_flow::OperationFlow,
    operations::{DURATIONS, Operation},
};

#[component]
pub fn BlockForm(
    flow: OperationFlow,
    /// Prefilled target, e.g. `from 203.0.113.66`.
    target: String,
    /// Prefilled reason.
    reason: String,
) -> impl IntoView {
    let target = RwSignal::new(target);
    let reason = RwSignal::new(reason);
    let duration = RwSignal::new(DURATIONS[1].0);
    view! {
        <form
            class="block-form"
            data-testid="block-form"
            on:submit=move |ev| {
                ev.prevent_default();
                flow.ask(Operation::Block {
                    target: target.get_untracked(),
                    duration_secs: duration.get_untracked(),
                    reason: reason.get_untracked(),
                });
            }
        >
            <label for="block-target">"Target"</label>
            <input
                id="block-target"
                bind:value=target
                required
                spellcheck="false"
                aria-describedby="block-target-help"
            />
            <small id="block-target-help" class="muted">
                "e.g. from 203.0.113.66 · from 203.0.113.0/24 · udp from 50.2.6.12 sport 53 · tcp to 198.51.100.10 dport 80"
            </small>
            <label for="block-duration">"Duration"</label>
            <select
                id="block-duration"
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
                                {*label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <label for="block-reason">"Reason"</label>
            <input id="block-reason" bind:value=reason required maxlength="200"/>
            <button type="submit" class="primary">"Block…"</button>
        </form>
    }
}
