//! The confirmation dialog: shows the server's preview of a change and offers Confirm or Cancel.
//! Escape cancels; Confirm has the focus, so Enter confirms a change the user has just read.

use leptos::{html, prelude::*};

use crate::confirm::Preview;

#[component]
pub fn ConfirmDialog(
    preview: Preview,
    /// Called with the token when the user confirms.
    on_confirm: Callback<String>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let confirm_button = NodeRef::<html::Button>::new();
    Effect::new(move |_| {
        if let Some(button) = confirm_button.get() {
            let _ = button.focus();
        }
    });
    let token = preview.token.clone();
    view! {
        <div class="modal-backdrop">
            <div
                class="modal"
                role="dialog"
                aria-modal="true"
                aria-labelledby="confirm-title"
                data-testid="confirm-dialog"
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        on_cancel.run(());
                    }
                }
            >
                <h2 id="confirm-title">{preview.title.clone()}</h2>
                <ul class="changes">
                    {preview.changes.iter().map(|line| view! { <li>{line.clone()}</li> }).collect_view()}
                </ul>
                {(!preview.warnings.is_empty())
                    .then(|| {
                        view! {
                            <ul class="warnings" role="note">
                                {preview
                                    .warnings
                                    .iter()
                                    .map(|line| view! { <li>{line.clone()}</li> })
                                    .collect_view()}
                            </ul>
                        }
                    })}
                <p class="muted small">
                    {format!("This confirmation is valid for {} seconds.", preview.expires_in_secs)}
                </p>
                <div class="buttons">
                    <button
                        type="button"
                        class="primary"
                        node_ref=confirm_button
                        on:click=move |_| on_confirm.run(token.clone())
                    >
                        "Confirm"
                    </button>
                    <button type="button" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </div>
        </div>
    }
}
