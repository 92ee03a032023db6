//! The two-step flow of an operation on the table: ask the server for a preview, show it in the
//! confirmation dialog, apply it with the preview's token on Confirm, and report the outcome.

use leptos::prelude::*;

use crate::{
    auth,
    components::confirm_dialog::ConfirmDialog,
    confirm::Preview,
    operators::{
        operations::{Operation, apply_operation, preview_operation},
        tuning::{apply_tuning, preview_tuning},
    },
};

/// Server function errors arrive as "error running server function: …"; show only the message.
pub fn clean_error(error: &ServerFnError) -> String {
    let text = error.to_string();
    text.rsplit(": ").next().unwrap_or(&text).to_owned()
}

/// Whether the server's answer is the first of two confirmations (see
/// [`crate::operators::tuning::advice::FIRST_OF_TWO_CONFIRMATIONS`]).
pub fn asks_second_confirmation(message: &str) -> bool {
    message.starts_with(crate::operators::tuning::advice::FIRST_OF_TWO_CONFIRMATIONS)
}

type PreviewResult = (Operation, Result<Preview, ServerFnError>);

#[derive(Clone, Copy)]
pub struct OperationFlow {
    preview: Action<Operation, PreviewResult>,
    apply: Action<(String, Operation), Result<String, ServerFnError>>,
    pending: RwSignal<Option<(Operation, Preview)>>,
    /// The operation last confirmed, to preview again when the server asks for a second
    /// confirmation.
    confirmed: RwSignal<Option<Operation>>,
}

impl OperationFlow {
    pub fn new() -> Self {
        let preview = Action::new_unsync(|operation: &Operation| {
            let operation = operation.clone();
            async move {
                let result = match operation.permission() {
                    auth::Permission::Tune => preview_tuning(operation.clone()).await,
                    _ => preview_operation(operation.clone()).await,
                };
                (operation, result)
            }
        });
        let apply = Action::new_unsync(|(token, operation): &(String, Operation)| {
            let (token, operation) = (token.clone(), operation.clone());
            async move {
                match operation.permission() {
                    auth::Permission::Tune => apply_tuning(token, operation).await,
                    _ => apply_operation(token, operation).await,
                }
            }
        });
        let pending = RwSignal::new(None);
        Effect::new(move |_| {
            if let Some((operation, Ok(shown))) = preview.value().get() {
                pending.set(Some((operation, shown)));
            }
        });
        let confirmed = RwSignal::new(None::<Operation>);
        // A value below RFC 5382's floor takes two confirmations: the server's answer to the first
        // says so, and the flow asks for the (second) preview at once.
        Effect::new(move |_| {
            if let Some(Err(error)) = apply.value().get()
                && asks_second_confirmation(&clean_error(&error))
                && let Some(operation) = confirmed.get_untracked()
            {
                preview.dispatch(operation);
            }
        });
        Self {
            preview,
            apply,
            pending,
            confirmed,
        }
    }

    /// Starts the flow: the preview is fetched and shown.
    pub fn ask(&self, operation: Operation) {
        self.apply.value().set(None);
        self.preview.dispatch(operation);
    }

    /// Changes each time an operation was applied (successfully or not): a key to refetch by.
    pub fn applied(&self) -> usize {
        self.apply.version().get()
    }
}

impl std::fmt::Debug for OperationFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationFlow").finish_non_exhaustive()
    }
}

impl Default for OperationFlow {
    fn default() -> Self {
        Self::new()
    }
}

/// The dialog and the outcome banners of a flow.
#[component]
pub fn OperationFeedback(flow: OperationFlow) -> impl IntoView {
    let preview_error = move || match flow.preview.value().get() {
        Some((_, Err(error))) if flow.pending.get().is_none() => Some(clean_error(&error)),
        _ => None,
    };
    view! {
        {move || {
            preview_error()
                .map(|message| {
                    view! {
                        <p class="banner critical" role="alert" data-testid="operation-error">
                            {message}
                        </p>
                    }
                })
        }}
        {move || {
            flow.apply
                .value()
                .get()
                .map(|outcome| match outcome {
                    Ok(message) => {
                        view! {
                            <p class="banner info" role="status" data-testid="operation-done">
                                {message}
                            </p>
                        }
                            .into_any()
                    }
                    Err(error) if asks_second_confirmation(&clean_error(&error)) => {
                        view! {
                            <p
                                class="banner warning"
                                role="status"
                                data-testid="operation-first-confirmation"
                            >
                                {clean_error(&error)}
                            </p>
                        }
                            .into_any()
                    }
                    Err(error) => {
                        view! {
                            <p class="banner critical" role="alert" data-testid="operation-error">
                                {clean_error(&error)}
                            </p>
                        }
                            .into_any()
                    }
                })
        }}
        {move || {
            flow.pending
                .get()
                .map(|(operation, shown)| {
                    view! {
                        <ConfirmDialog
                            preview=shown
                            on_confirm=Callback::new(move |token: String| {
                                flow.confirmed.set(Some(operation.clone()));
                                flow.apply.dispatch((token, operation.clone()));
                                flow.pending.set(None);
                            })
                            on_cancel=Callback::new(move |()| {
                                flow.pending.set(None);
                                flow.preview.value().set(None);
                            })
                        />
                    }
                })
        }}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_two_confirmations_is_recognised_after_the_error_prefix_is_cut() {
        let raw = ServerFnError::new(format!(
            "{}. 180 s (3 min) is below RFC 5382's floor of 2 h 4 min, so nothing was changed yet.",
            crate::operators::tuning::advice::FIRST_OF_TWO_CONFIRMATIONS
        ));
        assert!(asks_second_confirmation(&clean_error(&raw)), "{raw}");
        let other =
            ServerFnError::new("The state changed since the preview. Preview the change again.");
        assert!(!asks_second_confirmation(&clean_error(&other)));
    }
}
