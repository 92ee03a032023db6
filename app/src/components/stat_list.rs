//! The counters beside the gauge: what the kernel dropped and evicted, and what the table costs.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{format, trend};

#[component]
pub fn StatList(status: ConntrackStatus) -> impl IntoView {
    let unknown = || "unknown".to_owned();
    let table_memory = status.table_bytes().map_or_else(unknown, format::bytes);
    let full_memory = status
        .full_table_bytes()
        .map_or_else(unknown, format::bytes);
    let entry_size = status
        .entry_bytes
        .map_or_else(unknown, |b| format!("{b} B"));
    let stats = status.stats;
    view! {
        <dl class="stats">
            <Stat
                label="drop, total"
                testid="drop"
                value=stats.drop
                hint=trend::DROP_MEANING
            />
            <Stat
                label="early_drop, total"
                testid="early-drop"
                value=stats.early_drop
                hint=trend::EARLY_DROP_MEANING
            />
            <Stat
                label="insert_failed, total"
                testid="insert-failed"
                value=stats.insert_failed
                hint=trend::INSERT_FAILED_MEANING
            />
            <Stat label="buckets" testid="buckets" value=status.buckets hint="hash table size"/>
            <div class="stat">
                <dt>"memory"</dt>
                <dd data-testid="memory">{table_memory}</dd>
                <dd class="hint">
                    {format!("at the limit: {full_memory}; one entry: {entry_size}")}
                </dd>
            </div>
        </dl>
    }
}

#[component]
fn Stat(
    label: &'static str,
    testid: &'static str,
    value: u64,
    hint: &'static str,
) -> impl IntoView {
    view! {
        <div class="stat">
            <dt>{label}</dt>
            <dd data-testid=testid data-value=value.to_string()>{format::thousands(value)}</dd>
            <dd class="hint">{hint}</dd>
        </div>
    }
}
