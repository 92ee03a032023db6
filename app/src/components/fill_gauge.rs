//! The fill gauge: entries against the limit, as a bar and in numbers.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::format;

/// Fill at or above which the gauge turns amber.
pub const WARNING_PERCENT: f64 = 80.0;
/// Fill at or above which the gauge turns red: new flows are about to be dropped.
pub const CRITICAL_PERCENT: f64 = 95.0;

/// The gauge's severity class for a fill percentage.
pub fn severity(percent: f64) -> &'static str {
    if percent >= CRITICAL_PERCENT {
        "critical"
    } else if percent >= WARNING_PERCENT {
        "warning"
    } else {
        "normal"
    }
}

#[component]
pub fn FillGauge(status: ConntrackStatus, at_ms: u64) -> impl IntoView {
    let percent = status.fill_percent();
    let width = format!("width: {:.2}%", percent.min(100.0));
    view! {
        <section class="gauge-card" aria-label="Table fill">
            <div
                class=format!("gauge {}", severity(percent))
                role="meter"
                aria-valuemin="0"
                aria-valuemax=status.max.to_string()
                aria-valuenow=status.count.to_string()
                aria-label="conntrack table fill"
            >
                <div class="gauge-fill" style=width></div>
            </div>
            <p class="gauge-numbers">
                <span class="big" data-testid="count" data-value=status.count.to_string()>
                    {format::thousands(status.count)}
                </span>
                " of "
                <span data-testid="max" data-value=status.max.to_string()>
                    {format::thousands(status.max)}
                </span>
                " entries · "
                <span data-testid="fill-percent">{format::percent(percent)}</span>
            </p>
            <p class="muted small">"Updated " {format::clock_utc(at_ms)}</p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_thresholds() {
        assert_eq!(severity(0.0), "normal");
        assert_eq!(severity(79.9), "normal");
        assert_eq!(severity(80.0), "warning");
        assert_eq!(severity(94.99), "warning");
        assert_eq!(severity(95.0), "critical");
        assert_eq!(severity(100.0), "critical");
    }
}
