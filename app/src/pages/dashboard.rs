//! The dashboard: the table's fill and counters, live.

use leptos::prelude::*;

use crate::{
    components::{fill_gauge::FillGauge, helper_banner::HelperBanner, stat_list::StatList},
    live::{LiveSample, follow_live_samples, latest_sample},
};

#[component]
pub fn Dashboard() -> impl IntoView {
    // The server renders the newest sample; once hydrated, the live stream replaces it every second.
    let first = Resource::new(|| (), |_| latest_sample());
    let live = RwSignal::new(None::<LiveSample>);
    Effect::new(move |_| follow_live_samples(live));

    view! {
        <h1>"Connection tracking"</h1>
        <Transition fallback=|| view! { <p class="muted">"Reading the table…"</p> }>
            {move || {
                let newest = live.get();
                Suspend::new(async move {
                    let sample = match newest {
                        Some(sample) => sample,
                        None => first.await.unwrap_or(LiveSample::Starting),
                    };
                    view! { <SampleView sample/> }
                })
            }}
        </Transition>
    }
}

#[component]
fn SampleView(sample: LiveSample) -> impl IntoView {
    match sample {
        LiveSample::Starting => {
            view! { <p class="muted" data-testid="starting">"Waiting for the first reading…"</p> }
                .into_any()
        }
        LiveSample::HelperDown {
            since_ms, cause, ..
        } => view! { <HelperBanner since_ms cause/> }.into_any(),
        LiveSample::Up { at_ms, status } => view! {
            <FillGauge status=status.clone() at_ms/>
            <StatList status/>
        }
        .into_any(),
    }
}
