//! The fill gauge: this namespace's entries against the limit (which every namespace's table may
//! reach on its own), as a bar with the thresholds marked, and in numbers; beside the raw fill,
//! the assured share of the limit, the entries the kernel cannot evict to make room.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{dashboard::live::AssuredReading, dashboard::thresholds::Thresholds, format};

/// What the assured figure is and when it matters, in the gauge's words.
pub const ASSURED_MEANING: &str = "assured: entries that have seen traffic both ways (TCP past \
    its handshake, UDP answered and kept going). The kernel never evicts them to make room \
    (early_drop skips them). It matters when the table is near full: the other entries are \
    evicted for new connections (early_drop rises), but once assured entries fill the limit, \
    new connections are dropped (drop rises, \u{201c}table full\u{201d} in the kernel log).";

#[component]
pub fn FillGauge(
    status: ConntrackStatus,
    at_ms: u64,
    thresholds: Thresholds,
    assured: Option<AssuredReading>,
) -> impl IntoView {
    let percent = status.fill_percent();
    let severity = thresholds.severity(percent).class();
    let width = format!("width: {:.2}%", percent.min(100.0));
    let mark = |at: f64| format!("left: {:.2}%", at.min(100.0));
    let assured_bar = assured.map(|reading| {
        let share = reading.percent_of(status.max).min(100.0);
        view! {
            <div
                class="gauge-assured"
                style=format!("width: {share:.2}%")
                title="assured: cannot be evicted"
            ></div>
        }
    });
    view! {
        <section
            class="gauge-card"
            aria-label="Table fill"
            data-testid="gauge"
            data-severity=severity
            data-at-ms=at_ms.to_string()
        >
            <div
                class=format!("gauge {severity}")
                role="meter"
                aria-valuemin="0"
                aria-valuemax=status.max.to_string()
                aria-valuenow=status.count.to_string()
                aria-label="conntrack table fill"
            >
                <div class="gauge-fill" style=width></div>
                {assured_bar}
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
            <p class="gauge-numbers">{assured_line(&status, assured)}</p>
            <p class="muted small" data-testid="assured-meaning">{ASSURED_MEANING}</p>
            <p class="muted small">
                "Updated " {format::clock_utc(at_ms)} " · warning at "
                {thresholds.warning_percent} " %, critical at " {thresholds.critical_percent} " %"
            </p>
        </section>
    }
}

/// The assured entries in numbers: how many, their share of the limit, when they were counted.
fn assured_line(status: &ConntrackStatus, assured: Option<AssuredReading>) -> AnyView {
    match assured {
        Some(reading) => view! {
            <span data-testid="assured" data-value=reading.assured.to_string()>
                {format::thousands(reading.assured)}
            </span>
            " assured, "
            <span data-testid="assured-percent">
                {format::percent(reading.percent_of(status.max))}
            </span>
            " of the limit: cannot be evicted · counted "
            <span data-testid="assured-at" data-value=reading.at_ms.to_string()>
                {format::clock_utc(reading.at_ms)}
            </span>
            " in a walk of "
            {format::thousands(reading.entries)}
            " entries"
        }
        .into_any(),
        None => view! {
            <span data-testid="assured" data-value="">
                "assured entries not counted yet (the first walk of the table is under way)"
            </span>
        }
        .into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assured_figure_says_what_it_is_and_when_it_matters() {
        assert!(ASSURED_MEANING.contains("never evicts them to make room"));
        assert!(ASSURED_MEANING.contains("early_drop skips them"));
        assert!(ASSURED_MEANING.contains("near full"));
        assert!(ASSURED_MEANING.contains("new connections are dropped"));
        // The kernel's words for the counters it names.
        assert!(ASSURED_MEANING.contains("early_drop rises"));
        assert!(ASSURED_MEANING.contains("drop rises"));
    }

    #[test]
    fn the_share_is_of_the_limit_not_of_the_entries() {
        let reading = AssuredReading {
            at_ms: 0,
            assured: 1_024,
            entries: 2_048,
            walk_ms: 0,
        };
        assert_eq!(reading.percent_of(4_096), 25.0);
        assert_eq!(reading.percent_of(0), 0.0);
    }
}
