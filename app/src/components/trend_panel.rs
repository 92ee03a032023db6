//! The rates and the forecast beside the gauge, each with a line saying what it means, and the
//! kernel log's count of `table full` messages.

use ctguard_protocol::KernelLogSummary;
use leptos::prelude::*;

use crate::{
    format,
    history::History,
    trend::{self, FORECAST_WINDOW_MS, Forecast, RATE_WINDOW_MS},
};

#[component]
pub fn TrendPanel(history: History, kernel_log: Option<KernelLogSummary>) -> impl IntoView {
    let rates = trend::window(&history.recent, RATE_WINDOW_MS)
        .and_then(|(older, newer)| trend::rates(older, newer));
    let forecast = trend::window(&history.recent, FORECAST_WINDOW_MS)
        .map_or(Forecast::Unknown, |(older, newer)| {
            trend::forecast(older, newer)
        });
    let rate = |pick: fn(&trend::Rates) -> f64| {
        rates
            .as_ref()
            .map_or_else(|| "…".to_owned(), |r| trend::per_second(pick(r)))
    };
    let kernel_log_line = match kernel_log {
        Some(log) => format!(
            "{} in the last {} min ({} more suppressed)",
            format::thousands(log.table_full),
            log.window_secs / 60,
            format::thousands(log.suppressed)
        ),
        None => "not read yet".to_owned(),
    };
    let table_full = kernel_log.map_or(0, |log| log.table_full).to_string();
    view! {
        <section class="trend" aria-label="Rates and forecast">
            <div class=format!("forecast {}", forecast.kind())>
                <span class="label">"forecast"</span>
                <strong data-testid="forecast" data-kind=forecast.kind()>
                    {forecast.describe()}
                </strong>
                <span class="hint">"at the growth of the last 30 s"</span>
            </div>
            <dl class="stats rates">
                <Rate
                    label="new entries"
                    testid="rate-new"
                    value=rate(|r| r.new_entries)
                    hint=trend::NEW_ENTRIES_MEANING
                />
                <Rate
                    label="drop"
                    testid="rate-drop"
                    value=rate(|r| r.drop)
                    hint=trend::DROP_MEANING
                />
                <Rate
                    label="early_drop"
                    testid="rate-early-drop"
                    value=rate(|r| r.early_drop)
                    hint=trend::EARLY_DROP_MEANING
                />
                <Rate
                    label="insert_failed"
                    testid="rate-insert-failed"
                    value=rate(|r| r.insert_failed)
                    hint=trend::INSERT_FAILED_MEANING
                />
                <div class="stat">
                    <dt>"kernel log: table full"</dt>
                    <dd data-testid="kernel-log-table-full" data-value=table_full>
                        {kernel_log_line}
                    </dd>
                    <dd class="hint">"“nf_conntrack: table full, dropping packet” messages"</dd>
                </div>
            </dl>
        </section>
    }
}

#[component]
fn Rate(
    label: &'static str,
    testid: &'static str,
    value: String,
    hint: &'static str,
) -> impl IntoView {
    view! {
        <div class="stat">
            <dt>{label}</dt>
            <dd data-testid=testid>{value}</dd>
            <dd class="hint">{hint}</dd>
        </div>
    }
}
