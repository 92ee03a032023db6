//! `GET /metrics`: the newest sample in the Prometheus text exposition format (version 0.0.4).
//!
//! Hand-written rather than through the `metrics` crates: every value already sits in the sampler's
//! newest sample, so rendering it is a dozen lines, with no global recorder to install and no
//! dependency to keep in step. Nothing here asks the helper: scrapes cost it nothing.

use std::{fmt::Write, sync::Arc};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use ctguard_app::live::{LiveSample, ssr::LiveFeed};

use crate::{auth::login::LoginService, domain::MetricsToken};

pub const METRICS_PATH: &str = "/metrics";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who may scrape: anyone (`None`, the default) or whoever presents the configured bearer token.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess(pub Option<Arc<MetricsToken>>);

pub async fn metrics(
    State(feed): State<LiveFeed>,
    State(access): State<MetricsAccess>,
    State(login): State<LoginService>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &access.0 {
        let presented = headers
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if !token.authorizes(presented) {
            tracing::warn!("metrics scrape refused: missing or wrong bearer token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    let mut text = render(&feed.latest());
    // The server's own: a login storm shows here, never above the hasher's bound.
    let _ = writeln!(
        text,
        "# HELP ctguard_password_checks_running Password hashes running now (argon2id).\n\
         # TYPE ctguard_password_checks_running gauge\n\
         ctguard_password_checks_running {}",
        login.hasher.running()
    );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// The exposition text for one sample. While the helper is down only `ctguard_helper_up 0` is
/// reported: stale numbers would look current.
pub fn render(sample: &LiveSample) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    let LiveSample::Up {
        at_ms,
        status,
        kernel_log,
        helper,
    } = sample
    else {
        metric(
            "ctguard_helper_up",
            "gauge",
            "1 if the last reading of the helper succeeded, else 0.",
            0,
        );
        return out;
    };
    metric(
        "ctguard_helper_up",
        "gauge",
        "1 if the last reading of the helper succeeded, else 0.",
        1,
    );
    metric(
        "ctguard_conntrack_entries",
        "gauge",
        "Entries in the conntrack table (nf_conntrack_count).",
        status.count,
    );
    metric(
        "ctguard_conntrack_limit",
        "gauge",
        "The table's limit (nf_conntrack_max).",
        status.max,
    );
    metric(
        "ctguard_conntrack_buckets",
        "gauge",
        "Hash table buckets (nf_conntrack_buckets).",
        status.buckets,
    );
    if let Some(bytes) = status.entry_bytes {
        metric(
            "ctguard_conntrack_entry_bytes",
            "gauge",
            "Kernel memory one entry costs (nf_conntrack slab object size).",
            bytes,
        );
    }
    let stats = status.stats;
    for (name, value, help) in [
        ("found", stats.found, "Searched entries that were found."),
        (
            "invalid",
            stats.invalid,
            "Packets conntrack could not track.",
        ),
        (
            "insert",
            stats.insert,
            "Entries inserted (0 on kernels that no longer count it).",
        ),
        (
            "insert_failed",
            stats.insert_failed,
            "Inserts lost to races between CPUs.",
        ),
        (
            "drop",
            stats.drop,
            "Packets dropped because the table was full.",
        ),
        (
            "early_drop",
            stats.early_drop,
            "Entries evicted to make room for new ones.",
        ),
        (
            "search_restart",
            stats.search_restart,
            "Lookups restarted after a hash resize.",
        ),
    ] {
        metric(
            &format!("ctguard_conntrack_{name}_total"),
            "counter",
            &format!("{help} Per-CPU statistics summed."),
            value,
        );
    }
    if let Some(log) = kernel_log {
        metric(
            "ctguard_kernel_log_table_full_messages",
            "gauge",
            "'table full, dropping packet' messages in the kernel log of the last 10 minutes.",
            log.table_full,
        );
        metric(
            "ctguard_kernel_log_suppressed_messages",
            "gauge",
            "Messages the kernel's rate limiter suppressed in the last 10 minutes.",
            log.suppressed,
        );
    }
    metric(
        "ctguard_blocks_active",
        "gauge",
        "Blocks the helper enforces now (unexpired).",
        helper.blocks_active,
    );
    metric(
        "ctguard_helper_journal_write_failures_total",
        "counter",
        "Journal appends that failed since the helper started; after the first it refuses every \
         change until restarted, and each refusal counts.",
        helper.journal_write_failures,
    );
    metric(
        "ctguard_last_sample_timestamp_seconds",
        "gauge",
        "When the helper was last read, in seconds since the Unix epoch.",
        at_ms / 1000,
    );
    out
}
