//! The dashboard: the table's fill against the thresholds, its history, the rates and the forecast,
//! live. The first render gets the history once; afterwards each live sample extends it.

use leptos::prelude::*;

use crate::{
    dashboard::fill_banner::FillBanner,
    dashboard::fill_gauge::FillGauge,
    dashboard::helper_banner::HelperBanner,
    dashboard::history::{DAY_MS, History, RECENT_MS},
    dashboard::history_chart::{ChartPoint, HistoryChart, hours_ago, minutes_ago},
    dashboard::live::{LiveSample, follow_live_samples},
    dashboard::stat_list::StatList,
    dashboard::thresholds::Thresholds,
    dashboard::trend::{self, Point},
    dashboard::trend_panel::TrendPanel,
    dashboard::{DashboardSeed, load_dashboard},
};

#[component]
pub fn Dashboard() -> impl IntoView {
    // The server renders the newest sample and the history; once hydrated, the live stream extends
    // them every second.
    let seed = Resource::new(|| (), |_| load_dashboard());
    let live = RwSignal::new(None::<LiveSample>);
    Effect::new(move |_| follow_live_samples(live));

    view! {
        <h1>"Connection tracking"</h1>
        <Transition fallback=|| view! { <p class="muted">"Reading the table…"</p> }>
            {move || Suspend::new(async move {
                match seed.await {
                    Ok(seed) => view! { <LiveDashboard seed live/> }.into_any(),
                    Err(_) => view! {
                        <div class="banner critical" role="alert">
                            "The dashboard could not be loaded. Reload the page."
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LiveDashboard(seed: DashboardSeed, live: RwSignal<Option<LiveSample>>) -> impl IntoView {
    let thresholds = seed.thresholds;
    let sample = RwSignal::new(seed.sample);
    let history = RwSignal::new(seed.history);
    // Runs in the browser only: each new sample replaces the shown one and extends the history by
    // the same rule the server follows.
    Effect::new(move |_| {
        if let Some(next) = live.get() {
            if let LiveSample::Up {
                at_ms,
                status,
                counters,
                ..
            } = &next
            {
                history
                    .update(|history| history.push(Point::from_sample(*at_ms, status, counters)));
            }
            sample.set(next);
        }
    });
    move || {
        let shown = sample.get();
        history
            .with(|history| view! { <SampleView sample=shown thresholds history=history.clone()/> })
    }
}

#[component]
fn SampleView(sample: LiveSample, thresholds: Thresholds, history: History) -> impl IntoView {
    let charts = view! { <Charts history=history.clone()/> };
    let now = match sample {
        LiveSample::Starting => {
            view! { <p class="muted" data-testid="starting">"Waiting for the first reading…"</p> }
                .into_any()
        }
        LiveSample::HelperDown {
            since_ms, cause, ..
        } => view! { <HelperBanner since_ms cause/> }.into_any(),
        LiveSample::Up {
            at_ms,
            status,
            kernel_log,
            assured,
            top_creator,
            top_turned_away,
            ..
        } => view! {
            <FillBanner
                status=status.clone()
                thresholds
                assured
                dropping=dropping(&history)
                top_creator
                top_turned_away
            />
            <FillGauge status=status.clone() at_ms thresholds assured/>
            <TrendPanel history kernel_log/>
            <StatList status/>
        }
        .into_any(),
    };
    view! {
        {now}
        {charts}
    }
}

/// Whether conntrack's `drop` total rose over the rates' window (the sampler's never-falling
/// totals, so a wrap is no rise).
fn dropping(history: &History) -> bool {
    trend::window(&history.recent, trend::RATE_WINDOW_MS)
        .and_then(|(older, newer)| trend::rates(older, newer))
        .is_some_and(|rates| rates.drop > 0.0)
}

#[component]
fn Charts(history: History) -> impl IntoView {
    let recent: Vec<ChartPoint> = history
        .recent
        .iter()
        .map(|p| (p.at_ms, p.count, p.max))
        .collect();
    let day: Vec<ChartPoint> = history
        .minutes
        .iter()
        .map(|p| (p.at_ms, p.count, p.max))
        .collect();
    let end = recent
        .last()
        .map(|p| p.0)
        .or_else(|| day.last().map(|p| p.0))
        .unwrap_or(0);
    view! {
        <div class="charts">
            <HistoryChart
                title="Last 15 minutes (one point per second)"
                testid="chart-recent"
                points=recent
                end_ms=end
                span_ms=RECENT_MS
                tick_ms=5 * 60_000
                label=minutes_ago
            />
            <HistoryChart
                title="Last 24 hours (peak per minute)"
                testid="chart-day"
                points=day
                end_ms=end
                span_ms=DAY_MS
                tick_ms=6 * 3_600_000
                label=hours_ago
            />
        </div>
    }
}
