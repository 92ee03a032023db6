//! The banner shown while the table's fill is at or above the warning or critical threshold.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{
    format,
    thresholds::{Severity, Thresholds},
};

#[component]
pub fn FillBanner(status: ConntrackStatus, thresholds: Thresholds) -> impl IntoView {
    let percent = status.fill_percent();
    let severity = thresholds.severity(percent);
    let (headline, limit, consequence) = match severity {
        Severity::Normal => return None,
        Severity::Warning => (
            "Warning: ",
            thresholds.warning_percent,
            "When it is full, the kernel drops new connections.",
        ),
        Severity::Critical => (
            "Critical: ",
            thresholds.critical_percent,
            "New connections are about to be dropped (or are being dropped already).",
        ),
    };
    Some(view! {
        <div
            class=format!("banner {}", severity.class())
            role="alert"
            data-testid="fill-banner"
            data-severity=severity.class()
        >
            <strong>{headline}</strong>
            {format!(
                "the connection-tracking table is {} full (threshold {limit} %). ",
                format::percent(percent),
            )}
            {consequence}
        </div>
    })
}
