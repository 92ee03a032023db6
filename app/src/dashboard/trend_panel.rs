//! The rates and the forecast beside the gauge, each with a line saying what it means, and the
//! kernel log's count of `table full` messages: the watched table's, by the namespace the kernel
//! names, with the other tables' and the rate limit's held-back messages beside it.

use ctguard_protocol::KernelLogSummary;
use leptos::prelude::*;

use crate::{
    dashboard::history::History,
    dashboard::trend::{self, FORECAST_WINDOW_MS, Forecast, RATE_WINDOW_MS},
    format,
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
    let log_text = kernel_log.map_or_else(KernelLogText::unread, |log| KernelLogText::of(&log));
    let table_full = kernel_log.map_or(0, |log| log.table_full).to_string();
    let netns = kernel_log
        .and_then(|log| log.netns_inode)
        .map(|inode| inode.to_string())
        .unwrap_or_default();
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
                    <dd
                        data-testid="kernel-log-table-full"
                        data-value=table_full
                        data-netns=netns
                    >
                        {log_text.headline}
                    </dd>
                    <dd class="hint" data-testid="kernel-log-tables">{log_text.tables}</dd>
                    <dd class="hint" data-testid="kernel-log-suppressed">{log_text.suppressed}</dd>
                </div>
            </dl>
        </section>
    }
}

/// What the dashboard says about the kernel log's `table full` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLogText {
    /// The watched table's count, and which namespace that is.
    pub headline: String,
    /// Which messages count as this table's, and the others' count.
    pub tables: String,
    /// The network rate limit's held-back messages.
    pub suppressed: String,
}

impl KernelLogText {
    fn unread() -> Self {
        Self {
            headline: "not read yet".to_owned(),
            tables: String::new(),
            suppressed: String::new(),
        }
    }

    /// The kernel's wording: `nf_conntrack: table full, dropping packet` for the initial
    /// namespace, `... table full in netns N, dropping packet` for the others (6.17+);
    /// `net_ratelimit: N callbacks suppressed` for the one limit all network messages share.
    pub fn of(log: &KernelLogSummary) -> Self {
        let minutes = log.window_secs / 60;
        let headline = match log.netns_inode {
            Some(inode) => format!(
                "{} in the last {minutes} min for this table (netns {inode})",
                format::thousands(log.table_full)
            ),
            None => format!(
                "{} in the last {minutes} min for this table",
                format::thousands(log.table_full)
            ),
        };
        let mut tables = "“nf_conntrack: table full, dropping packet” from the initial namespace, \
            “… table full in netns N, dropping packet” from the others (kernels since 6.17)"
            .to_owned();
        if log.other_tables > 0 {
            tables.push_str(&format!(
                "; {} more for other namespaces' tables, not counted here",
                format::thousands(log.other_tables)
            ));
        }
        if log.unattributed > 0 {
            tables.push_str(&format!(
                "; {} that name no namespace: before 6.17 the kernel prints that line for every \
                 namespace, so some may be this table's",
                format::thousands(log.unattributed)
            ));
        }
        let suppressed = format!(
            "{} network messages of every kind held back by the kernel's rate limit \
             (“net_ratelimit: N callbacks suppressed”); table-full lines may be among them",
            format::thousands(log.suppressed)
        );
        Self {
            headline,
            tables,
            suppressed,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(other_tables: u64, unattributed: u64) -> KernelLogSummary {
        KernelLogSummary {
            window_secs: 600,
            table_full: 1_234,
            other_tables,
            unattributed,
            netns_inode: Some(4_026_532_177),
            suppressed: 41,
        }
    }

    #[test]
    fn the_count_is_this_tables_and_names_its_namespace_as_the_kernel_does() {
        let text = KernelLogText::of(&log(0, 0));
        assert_eq!(
            text.headline,
            "1,234 in the last 10 min for this table (netns 4026532177)"
        );
        // The kernel's two forms, word for word (nf_conntrack_core.c, __nf_conntrack_alloc).
        assert!(text.tables.contains("table full, dropping packet"));
        assert!(
            text.tables
                .contains("table full in netns N, dropping packet")
        );
        assert!(!text.tables.contains("other namespaces"), "none to mention");
    }

    #[test]
    fn other_tables_and_unattributed_messages_are_said_apart() {
        let text = KernelLogText::of(&log(7, 3));
        assert!(
            text.tables
                .contains("7 more for other namespaces' tables, not counted here")
        );
        assert!(text.tables.contains("3 that name no namespace"));
        assert!(text.tables.contains("some may be this table's"));
    }

    #[test]
    fn suppressed_is_every_network_message_held_back_not_only_table_full() {
        let text = KernelLogText::of(&log(0, 0));
        assert!(
            text.suppressed
                .starts_with("41 network messages of every kind")
        );
        assert!(
            text.suppressed
                .contains("net_ratelimit: N callbacks suppressed")
        );
        assert!(!text.suppressed.contains("more suppressed"));
    }
}
