//! The banner shown while the table's fill is at or above the warning or critical threshold,
//! saying what that does to new connections: it depends on the assured share of the limit (what
//! the kernel cannot evict) and on whether conntrack is dropping packets now; and who creates
//! entries fastest, when the helper counts them.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{
    dashboard::live::{AssuredReading, TopCreator, TopTurnedAway},
    dashboard::thresholds::{self, Severity, Thresholds},
    format,
    operators::creators,
};

#[component]
pub fn FillBanner(
    status: ConntrackStatus,
    thresholds: Thresholds,
    assured: Option<AssuredReading>,
    /// Whether conntrack's `drop` counter rose over the rate window.
    dropping: bool,
    /// Who creates entries fastest (last minute, by source), when the helper counts them.
    top_creator: Option<TopCreator>,
    /// Who conntrack turned away most over the last minute (its table full), when anyone was.
    top_turned_away: Option<TopTurnedAway>,
) -> impl IntoView {
    let percent = status.fill_percent();
    let severity = thresholds.severity(percent);
    let (headline, limit) = match severity {
        Severity::Normal => return None,
        Severity::Warning => ("Warning: ", thresholds.warning_percent),
        Severity::Critical => ("Critical: ", thresholds.critical_percent),
    };
    let assured_percent = assured.map(|reading| reading.percent_of(status.max));
    let eviction = thresholds.eviction(assured_percent);
    let consequence = thresholds::consequence(eviction, assured_percent, dropping);
    let eviction_class = match eviction {
        thresholds::Eviction::Unknown => "unknown",
        thresholds::Eviction::Room => "room",
        thresholds::Eviction::Unevictable => "unevictable",
    };
    Some(view! {
        <div
            class=format!("banner {}", severity.class())
            role="alert"
            data-testid="fill-banner"
            data-severity=severity.class()
            data-eviction=eviction_class
            data-dropping=dropping.to_string()
        >
            <strong>{headline}</strong>
            {format!(
                "the connection-tracking table is {} full (threshold {limit} %). ",
                format::percent(percent),
            )}
            {consequence}
            {top_creator
                .map(|top| {
                    view! {
                        <p data-testid="top-creator">
                            {format!(
                                "Top creator of new entries over the last minute: {} {}. ",
                                top.address,
                                creators::creates(top.per_second),
                            )}
                            // Not "Suspicious sources": the navigation's link has that name.
                            <a href="/suspicious">"See who creates entries"</a>
                        </p>
                    }
                })}
            {top_turned_away
                .map(|top| {
                    view! {
                        <p data-testid="top-turned-away">
                            {format!(
                                "Turned away most over the last minute (table full): {} ({}, {}/s). ",
                                top.address,
                                creators::refused(top.packets),
                                format::thousands(top.per_second),
                            )}
                            <a href="/suspicious">"See who is turned away"</a>
                        </p>
                    }
                })}
        </div>
    })
}
