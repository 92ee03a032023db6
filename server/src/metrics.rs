//! `GET /metrics`: the newest sample in the Prometheus text exposition format (version 0.0.4).
//!
//! Hand-written rather than through the `metrics` crates: every value already sits in the sampler's
//! newest sample, so rendering it is a dozen lines, with no global recorder to install and no
//! dependency to keep in step. Nothing here asks the helper: scrapes cost it nothing (the
//! creators too are the sampler's newest answer).

use std::{fmt::Write, sync::Arc};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use ctguard_app::{
    dashboard::live::{LiveSample, ssr::LiveFeed},
    operators::creators::DEFAULT_WINDOW_SECS,
};
use ctguard_protocol::{ConntrackStats, CreatorKey, Creators};

use crate::{auth::login::LoginService, domain::MetricsToken, sampler::CreatorsReceiver};

pub const METRICS_PATH: &str = "/metrics";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who may scrape: anyone (`None`, the default) or whoever presents the configured bearer token.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess(pub Option<Arc<MetricsToken>>);

/// The sampler's newest creators and how many per key to export (`--metrics-top-creators`).
#[derive(Debug, Clone)]
pub struct CreatorsMetrics {
    pub feed: CreatorsReceiver,
    pub top: u16,
}

pub async fn metrics(
    State(feed): State<LiveFeed>,
    State(access): State<MetricsAccess>,
    State(login): State<LoginService>,
    State(creators): State<CreatorsMetrics>,
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
    let sample = feed.latest();
    let mut text = render(&sample);
    // Absent while the helper is down (like every reading of it) or does not count creators.
    let newest = creators.feed.borrow().clone();
    if let (LiveSample::Up { .. }, Some(newest)) = (&sample, newest) {
        render_creators(&mut text, &newest, usize::from(creators.top));
    }
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
        counters,
        assured,
        // The top creator is the dashboard's; `render_creators` exports them all.
        top_creator: _,
        top_turned_away: _,
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
        "Entries in this namespace's conntrack table (nf_conntrack_count).",
        status.count,
    );
    metric(
        "ctguard_conntrack_limit",
        "gauge",
        "The limit each namespace's table may hold (nf_conntrack_max, one value for every \
         namespace).",
        status.max,
    );
    metric(
        "ctguard_conntrack_buckets",
        "gauge",
        "Hash table buckets (nf_conntrack_buckets), 8 bytes each, allocated whatever the count.",
        status.buckets,
    );
    if let Some(bytes) = status.entry_bytes {
        metric(
            "ctguard_conntrack_entry_bytes",
            "gauge",
            "Kernel memory one entry costs: its nf_conntrack slab object plus the extension area \
             when NAT, event listeners, accounting or helpers are in use.",
            bytes,
        );
    }
    if let Some(bytes) = status.slab_in_use_bytes() {
        metric(
            "ctguard_conntrack_memory_in_use_bytes",
            "gauge",
            "Kernel memory conntrack entries use now by the nf_conntrack slab: every namespace's \
             entries with their extension areas, and the hash.",
            bytes,
        );
    }
    if let Some(reading) = assured {
        metric(
            "ctguard_conntrack_assured_entries",
            "gauge",
            "Assured entries in this namespace's table at the newest walk of it: the kernel never \
             evicts them to make room (early_drop skips them), so when they fill the limit new \
             connections are dropped.",
            reading.assured,
        );
        metric(
            "ctguard_conntrack_assured_walk_timestamp_seconds",
            "gauge",
            "When the walk that counted the assured entries was made, in seconds since the Unix \
             epoch (walks are at least 30 s apart).",
            reading.at_ms / 1000,
        );
    }
    for (name, value, help) in counter_metrics(counters) {
        metric(
            &format!("ctguard_conntrack_{name}_total"),
            "counter",
            &format!(
                "{help} Increase since the server started, per CPU across the kernel's 32-bit \
                 wraps; never falls."
            ),
            value,
        );
    }
    if let Some(log) = kernel_log {
        metric(
            "ctguard_kernel_log_table_full_messages",
            "gauge",
            "'table full' messages in the kernel log of the last 10 minutes for this namespace's \
             table: naming its netns (6.17+), or the plain form when it is the initial namespace.",
            log.table_full,
        );
        metric(
            "ctguard_kernel_log_other_tables_table_full_messages",
            "gauge",
            "'table full' messages of the last 10 minutes for other namespaces' tables.",
            log.other_tables,
        );
        metric(
            "ctguard_kernel_log_unattributed_table_full_messages",
            "gauge",
            "'table full' messages of the last 10 minutes that name no namespace, on a kernel \
             before 6.17 that prints the same line for every namespace (any table's).",
            log.unattributed,
        );
        metric(
            "ctguard_kernel_log_suppressed_messages",
            "gauge",
            "Network messages of every kind the kernel's rate limit held back in the last 10 \
             minutes (net_ratelimit: N callbacks suppressed).",
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

/// The creators of new entries over the last minute: every new flow's rate, and per key the top
/// `top` creators' and the uncounted flows' rates (new flows per second over the seconds the
/// window covers). At most `4 × top` creator series, one per key and listed creator: the labels
/// are the key, the address and, for the keys with a service, its protocol and port (empty for
/// the others). Nothing before the window has covered a second.
pub fn render_creators(out: &mut String, creators: &Creators, top: usize) {
    let Some(window) = creators
        .window(DEFAULT_WINDOW_SECS)
        .filter(|window| window.covered_secs > 0 && creators.counting)
    else {
        return;
    };
    let rate = |new_flows: u64| new_flows as f64 / f64::from(window.covered_secs);
    let _ = writeln!(
        out,
        "# HELP ctguard_new_flows_per_second New conntrack entries per second over the last \
         minute, every protocol and family, counted by the kernel as it creates them (the \
         helper's counters, read every {} s).\n\
         # TYPE ctguard_new_flows_per_second gauge\n\
         ctguard_new_flows_per_second {}",
        creators.sample_secs,
        rate(window.new_flows)
    );
    let keys = CreatorKey::ALL.len();
    let lists = || {
        CreatorKey::ALL
            .into_iter()
            .filter_map(|key| window.list(key))
    };
    // `--metrics-top-creators 0`: no address at all, not even an empty family.
    if top > 0 {
        let _ = writeln!(
            out,
            "# HELP ctguard_creator_new_flows_per_second New conntrack entries per second over the \
             last minute of the top {top} creators per key (source, destination, destination with \
             the source port, source with the destination port; --metrics-top-creators): at most \
             {} series, labelled with their address.\n\
             # TYPE ctguard_creator_new_flows_per_second gauge",
            top * keys
        );
    }
    for list in lists() {
        for creator in list.top.iter().take(top) {
            let _ = writeln!(
                out,
                "ctguard_creator_new_flows_per_second{{key=\"{}\",address=\"{}\",protocol=\"{}\",port=\"{}\"}} {}",
                list.key.as_str(),
                creator.address,
                creator.protocol.map_or("", |protocol| protocol.as_str()),
                creator
                    .port
                    .map(|port| port.to_string())
                    .unwrap_or_default(),
                rate(creator.new_flows)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ctguard_creator_uncounted_flows_per_second New conntrack entries per second over \
         the last minute that a key's counting set could not count because it was full (at most \
         {} keys): one series per key.\n\
         # TYPE ctguard_creator_uncounted_flows_per_second gauge",
        creators.set_capacity
    );
    for list in lists() {
        let _ = writeln!(
            out,
            "ctguard_creator_uncounted_flows_per_second{{key=\"{}\"}} {}",
            list.key.as_str(),
            rate(list.uncounted)
        );
    }
}

/// The counters `/metrics` exports, each with what it counts on 5.x/6.x kernels (the packet path
/// no longer counts `insert`; `drop` is more than a full table).
pub fn counter_metrics(counters: &ConntrackStats) -> [(&'static str, u64, &'static str); 10] {
    [
        (
            "found",
            counters.found,
            "Entries NAT found already taken when choosing a tuple (6.x).",
        ),
        (
            "invalid",
            counters.invalid,
            "Packets conntrack could not track.",
        ),
        (
            "insert",
            counters.insert,
            "Entries inserted over ctnetlink or BPF; not new connections (the packet path no \
             longer counts them).",
        ),
        (
            "insert_failed",
            counters.insert_failed,
            "Entries not inserted: clashes between CPUs conntrack could not resolve, or chains \
             too long.",
        ),
        (
            "drop",
            counters.drop,
            "Packets conntrack dropped: mostly for a full table, also for clashes it could not \
             resolve (see insert_failed).",
        ),
        (
            "early_drop",
            counters.early_drop,
            "Entries evicted to make room for new ones (never assured ones).",
        ),
        (
            "search_restart",
            counters.search_restart,
            "Lookups restarted because an entry moved (hash resize or reuse).",
        ),
        (
            "error",
            counters.error,
            "Packets a protocol tracker's error check rejected.",
        ),
        (
            "clash_resolve",
            counters.clash_resolve,
            "Clashes between CPUs resolved by using the entry already there (harmless).",
        ),
        (
            "chaintoolong",
            counters.chaintoolong,
            "Inserts refused because a hash chain was too long: too few buckets.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use ctguard_protocol::{
        ConntrackStatus, HelperHealth,
        status::{CpuStats, TableIdentity},
    };

    use ctguard_app::dashboard::live::AssuredReading;

    use super::*;
    use crate::sampler::counters::CounterTracker;

    fn reading(drops: [u64; 2]) -> ConntrackStatus {
        ConntrackStatus {
            count: 10,
            max: 65_536,
            buckets: 65_536,
            stats: ConntrackStats {
                drop: drops.iter().sum(),
                ..ConntrackStats::default()
            },
            entry_bytes: Some(256),
            host_memory_bytes: 1 << 30,
            per_cpu: drops
                .iter()
                .zip(0..)
                .map(|(&drop, cpu)| CpuStats {
                    cpu,
                    stats: ConntrackStats {
                        drop,
                        ..ConntrackStats::default()
                    },
                })
                .collect(),
            identity: Some(TableIdentity {
                netns_inode: 4_026_531_833,
                boot_id: "b".to_owned(),
            }),
            memory: Default::default(),
        }
    }

    fn exported(text: &str, name: &str) -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_cpu_wrapping_never_lowers_the_exported_counter() {
        let mut tracker = CounterTracker::default();
        let mut last = 0;
        let top = u64::from(u32::MAX);
        // CPU 1's drop counter wraps between the third and fourth reading: the kernel's sum falls
        // by nearly 2^32, which a scrape of the sum would show as a reset and rate() as a spike.
        for drops in [[5, top - 20], [6, top - 10], [7, top], [8, 9], [9, 30]] {
            let status = reading(drops);
            let (counters, _) = tracker.observe(&status);
            let text = render(&LiveSample::Up {
                at_ms: 1_000,
                status,
                kernel_log: None,
                helper: HelperHealth::default(),
                counters,
                assured: None,
                top_creator: None,
                top_turned_away: None,
            });
            let drop = exported(&text, "ctguard_conntrack_drop_total").expect("exported");
            assert!(drop >= last, "{drop} < {last}");
            assert!(drop - last <= 22, "an increase of at most 22 per reading");
            last = drop;
        }
        assert_eq!(
            last,
            4 + 51,
            "CPU 0 counted 4, CPU 1 counted 51 through its wrap"
        );
    }

    #[test]
    fn the_help_texts_say_what_the_kernel_counts() {
        let helps: Vec<(&str, &str)> = counter_metrics(&ConntrackStats::default())
            .iter()
            .map(|(name, _, help)| (*name, *help))
            .collect();
        let help = |name: &str| {
            helps
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, h)| *h)
                .expect("listed")
        };
        assert!(help("drop").contains("mostly for a full table"));
        assert!(help("drop").contains("clashes"), "not a full table alone");
        assert!(help("insert").contains("not new connections"));
        assert!(help("chaintoolong").contains("too few buckets"));
        assert!(helps.iter().any(|(name, _)| *name == "clash_resolve"));
        let text = render(&LiveSample::Up {
            at_ms: 0,
            status: reading([0, 0]),
            kernel_log: None,
            helper: HelperHealth::default(),
            counters: ConntrackStats::default(),
            assured: None,
            top_creator: None,
            top_turned_away: None,
        });
        assert!(text.contains("# TYPE ctguard_conntrack_chaintoolong_total counter"));
        assert!(text.contains("this namespace's conntrack table"));
        assert!(!text.contains("because the table was full"));
    }

    /// The shipped alert rules name only metrics this endpoint exports, and take the counters'
    /// increase (never their raw value, which starts at zero with the server).
    #[test]
    fn the_shipped_alert_rules_use_exported_metrics_and_increases() {
        let rules = include_str!("../../packaging/prometheus/ctguard-alerts.yml");
        let text = render(&LiveSample::Up {
            at_ms: 0,
            status: reading([1, 2]),
            kernel_log: None,
            helper: HelperHealth::default(),
            counters: ConntrackStats::default(),
            assured: Some(AssuredReading {
                at_ms: 0,
                assured: 3,
                entries: 10,
                walk_ms: 0,
            }),
            top_creator: None,
            top_turned_away: None,
        });
        let expressions = alert_expressions(rules);
        assert!(expressions.len() >= 4, "{rules}");
        // The assured share is used together with the drops, not alone.
        assert!(
            expressions
                .iter()
                .any(|e| e.contains("ctguard_conntrack_assured_entries")
                    && e.contains("increase(ctguard_conntrack_drop_total[")),
            "{expressions:?}"
        );
        for expression in &expressions {
            for name in expression
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("ctguard_"))
            {
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "{name} in the rules is not exported"
                );
                if name.starts_with("ctguard_conntrack_") && name.ends_with("_total") {
                    assert!(
                        expression.contains(&format!("increase({name}["))
                            || expression.contains(&format!("rate({name}[")),
                        "{expression}: a counter is alerted on by its increase"
                    );
                }
            }
        }
        assert!(rules.contains("mostly for a full table"));
        assert!(!rules.contains("new connections dropped, conntrack table full"));
        assert!(rules.contains("early_drop skips them"));
    }

    #[test]
    fn the_kernel_log_and_assured_help_texts_say_whose_and_what() {
        let text = render(&LiveSample::Up {
            at_ms: 0,
            status: reading([0, 0]),
            kernel_log: Some(ctguard_protocol::KernelLogSummary::default()),
            helper: HelperHealth::default(),
            counters: ConntrackStats::default(),
            assured: Some(AssuredReading {
                at_ms: 0,
                assured: 0,
                entries: 0,
                walk_ms: 0,
            }),
            top_creator: None,
            top_turned_away: None,
        });
        let help = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("# HELP {name} ")))
                .unwrap_or_else(|| panic!("{name} not exported"))
                .to_owned()
        };
        assert!(help("ctguard_kernel_log_table_full_messages").contains("this namespace's table"));
        assert!(help("ctguard_kernel_log_table_full_messages").contains("initial namespace"));
        assert!(
            help("ctguard_kernel_log_suppressed_messages")
                .contains("Network messages of every kind")
        );
        assert!(help("ctguard_kernel_log_unattributed_table_full_messages").contains("6.17"));
        assert!(help("ctguard_conntrack_assured_entries").contains("early_drop skips them"));
    }

    fn creators_answer(counting: bool) -> ctguard_protocol::Creators {
        use ctguard_protocol::{CreatorCount, CreatorList, CreatorWindow, Protocol};
        let count = |last: u8, new_flows: u64, service: bool| CreatorCount {
            address: std::net::IpAddr::from([192, 0, 2, last]),
            protocol: service.then_some(Protocol::Udp),
            port: service.then_some(53),
            new_flows,
        };
        let window = |seconds: u32, covered_secs: u32| CreatorWindow {
            seconds,
            covered_secs,
            new_flows: 90_000,
            lists: CreatorKey::ALL
                .into_iter()
                .map(|key| CreatorList {
                    key,
                    top: (1..=3)
                        .map(|i| {
                            count(
                                i,
                                6_000 / u64::from(i),
                                ctguard_app::operators::creators::has_service(key),
                            )
                        })
                        .collect(),
                    rest: 10,
                    uncounted: 30,
                })
                .collect(),
            turned_away: ctguard_protocol::creators::TurnedAway {
                top: Vec::new(),
                rest: 0,
                uncounted: 0,
                kernel_drops: 0,
                unwatched_drops: 0,
            },
        };
        ctguard_protocol::Creators {
            counting,
            problem: None,
            set_capacity: 65_536,
            sample_secs: 10,
            sampled_at: 0,
            windows: vec![window(10, 10), window(60, 40), window(600, 40)],
            watching_since: None,
            watch_from_percent: 90,
        }
    }

    #[test]
    fn creators_are_exported_per_key_at_most_top_at_their_rates_over_what_the_window_covers() {
        let mut text = String::new();
        render_creators(&mut text, &creators_answer(true), 2);
        // The minute window has covered 40 s so far: rates are over 40 s.
        assert!(
            text.contains("\nctguard_new_flows_per_second 2250\n"),
            "{text}"
        );
        for key in CreatorKey::ALL {
            let series: Vec<&str> = text
                .lines()
                .filter(|line| {
                    line.starts_with(&format!(
                        "ctguard_creator_new_flows_per_second{{key=\"{}\",",
                        key.as_str()
                    ))
                })
                .collect();
            assert_eq!(series.len(), 2, "{key:?}: {text}");
            assert!(series[0].ends_with(" 150"), "{}", series[0]);
            assert!(series[1].ends_with(" 75"), "{}", series[1]);
            assert!(text.contains(&format!(
                "ctguard_creator_uncounted_flows_per_second{{key=\"{}\"}} 0.75\n",
                key.as_str()
            )));
        }
        assert!(text.contains(
            "ctguard_creator_new_flows_per_second{key=\"source\",address=\"192.0.2.1\",protocol=\"\",port=\"\"} 150\n"
        ));
        assert!(text.contains(
            "ctguard_creator_new_flows_per_second{key=\"destination_source_port\",address=\"192.0.2.2\",protocol=\"udp\",port=\"53\"} 75\n"
        ));
        assert!(
            text.contains("at most 8 series"),
            "the bound in the help: {text}"
        );
        assert_eq!(text.matches("# TYPE ").count(), 3);

        let mut none = String::new();
        render_creators(&mut none, &creators_answer(true), 0);
        assert!(!none.contains("address="), "0 exports no address: {none}");
        assert!(
            !none.contains("ctguard_creator_new_flows_per_second"),
            "{none}"
        );
        assert!(none.contains("ctguard_creator_uncounted_flows_per_second{key=\"source\"}"));
        assert!(none.contains("ctguard_new_flows_per_second 2250"));

        let mut off = String::new();
        render_creators(&mut off, &creators_answer(false), 10);
        assert_eq!(off, "", "not counting: nothing");
        let mut fresh = creators_answer(true);
        fresh.windows[1].covered_secs = 0;
        let mut early = String::new();
        render_creators(&mut early, &fresh, 10);
        assert_eq!(early, "", "nothing covered yet: no rate to give");
    }

    /// Each rule's `expr:`, also when folded over several lines (`expr: >-`).
    fn alert_expressions(rules: &str) -> Vec<String> {
        let mut expressions = Vec::new();
        let mut lines = rules.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(expression) = line.trim().strip_prefix("expr:") else {
                continue;
            };
            let expression = expression.trim();
            if expression != ">-" {
                expressions.push(expression.to_owned());
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let mut folded = Vec::new();
            while let Some(next) = lines.next_if(|next| {
                next.len() - next.trim_start().len() > indent && !next.trim().is_empty()
            }) {
                folded.push(next.trim());
            }
            expressions.push(folded.join(" "));
        }
        expressions
    }
}
