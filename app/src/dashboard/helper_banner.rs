//! The plain-words banner shown while the privileged helper cannot be read.

use leptos::prelude::*;

use crate::{dashboard::live::HelperOutage, format};

#[component]
pub fn HelperBanner(since_ms: u64, cause: HelperOutage) -> impl IntoView {
    view! {
        <div class="banner critical" role="alert" data-testid="helper-down">
            <strong>"Helper unavailable. "</strong>
            {cause.explain()}
            " Since "
            {format::clock_utc(since_ms)}
            ". The panel retries every second and recovers by itself."
        </div>
    }
}
