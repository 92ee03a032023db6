//! The fill gauge: this namespace's entries against the limit (which every namespace's table may
//! reach on its own), as a bar with the thresholds marked, and in numbers.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{format, thresholds::Thresholds};

#[component]
pub fn FillGauge(status: ConntrackStatus, at_ms: u64, thresholds: Thresholds) -> impl IntoView {
    let percent = status.fill_percent();
    let severity = thresholds.severity(percent).class();
    let width = format!("width: {:.2}%", percent.min(100.0));
    let mark = |at: f64| format!("left: {:.2}%", at.min(100.0));
    view! {
        <section class="gauge-card" aria-label="Table fill" data-testid="gauge" data-severity=severity>
            <div
                class=format!("gauge {severity}")
                role="meter"
                aria-valuemin="0"
                aria-valuemax=status.max.to_string()
                aria-valuenow=status.count.to_string()
                aria-label="conntrack table fill"
            >
                <div class="gauge-fill" style=width></div>
                <div
                    class="gauge-mark warning"
                    style=mark(thresholds.warning_percent)
                    title=format!("warning at {} %", thresholds.warning_percent)
                ></div>
                <div
                    class="gauge-mark critical"
                    style=mark(thresholds.critical_percent)
                    title=format!("critical at {} %", thresholds.critical_percent)
                ></div>
            </div>
            <p class="gauge-numbers">
                <span class="big" data-testid="count" data-value=status.count.to_string()>
                    {format::thousands(status.count)}
                </span>
                " of "
                <span data-testid="max" data-value=status.max.to_string()>
                    {format::thousands(status.max)}
                </span>
                " entries in this namespace's table · "
                <span data-testid="fill-percent">{format::percent(percent)}</span>
            </p>
            <p class="muted small">
                "Updated " {format::clock_utc(at_ms)} " · warning at "
                {thresholds.warning_percent} " %, critical at " {thresholds.critical_percent} " %"
            </p>
        </section>
    }
}
