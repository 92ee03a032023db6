//! The counters beside the gauge: what the kernel dropped, evicted and refused, and what the table
//! costs in memory, each figure saying whose table it is.

use ctguard_protocol::ConntrackStatus;
use leptos::prelude::*;

use crate::{dashboard::trend, format};

#[component]
pub fn StatList(status: ConntrackStatus) -> impl IntoView {
    let stats = status.stats;
    let memory = memory_figures(&status)
        .into_iter()
        .map(|figure| {
            view! {
                <div class="stat">
                    <dt>{figure.label}</dt>
                    <dd
                        data-testid=figure.testid
                        data-value=figure.raw.map(|raw| raw.to_string()).unwrap_or_default()
                    >
                        {figure.value}
                    </dd>
                    <dd class="hint">{figure.hint}</dd>
                </div>
            }
        })
        .collect_view();
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
            <Stat
                label="chaintoolong, total"
                testid="chaintoolong"
                value=stats.chaintoolong
                hint=trend::CHAINTOOLONG_MEANING
            />
            <Stat
                label="clash_resolve, total"
                testid="clash-resolve"
                value=stats.clash_resolve
                hint=trend::CLASH_RESOLVE_MEANING
            />
            <Stat
                label="buckets"
                testid="buckets"
                value=status.buckets
                hint="hash table size, shared by every namespace's table"
            />
            {memory}
        </dl>
    }
}

/// One memory figure as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFigure {
    pub label: &'static str,
    pub testid: &'static str,
    pub value: String,
    /// The figure unformatted (bytes), for whoever checks it against the kernel.
    pub raw: Option<u64>,
    pub hint: String,
}

/// The memory figures: in use by the slab (every namespace's entries), this namespace's entries,
/// this namespace's table at its limit, and one entry's cost with why. Every one says whose table
/// it counts: the limit is one value, but each namespace may hold up to it.
pub fn memory_figures(status: &ConntrackStatus) -> Vec<MemoryFigure> {
    let unknown = || "unknown".to_owned();
    let hash = format::bytes(status.hash_bytes());
    let memory = &status.memory;
    let in_use = match (status.slab_in_use_bytes(), memory.slab) {
        (Some(bytes), Some(slab)) => MemoryFigure {
            label: "memory in use",
            testid: "memory",
            value: format::bytes(bytes),
            raw: Some(bytes),
            hint: format!(
                "by the nf_conntrack slab: {} entries of every namespace on this host, with \
                 their extension areas, and the hash ({hash})",
                format::thousands(slab.active_objects)
            ),
        },
        _ => MemoryFigure {
            label: "memory in use",
            testid: "memory",
            value: unknown(),
            raw: None,
            hint: "the slab could not be read (/proc/slabinfo)".to_owned(),
        },
    };
    let namespace = MemoryFigure {
        label: "this namespace's entries",
        testid: "memory-namespace",
        value: status.table_bytes().map_or_else(unknown, format::bytes),
        raw: status.table_bytes(),
        hint: format!(
            "{} entries of this namespace's table",
            format::thousands(status.count)
        ),
    };
    let at_limit = MemoryFigure {
        label: "at the limit",
        testid: "memory-limit",
        value: status
            .full_table_bytes()
            .map_or_else(unknown, format::bytes),
        raw: status.full_table_bytes(),
        hint: format!(
            "this namespace's table at {} entries, with the hash ({hash}); each namespace may \
             hold up to the limit, so N namespaces up to N times the entries",
            format::thousands(status.max)
        ),
    };
    let entry = MemoryFigure {
        label: "one entry",
        testid: "memory-entry",
        value: status
            .entry_bytes
            .map_or_else(unknown, |bytes| format!("{bytes} B")),
        raw: status.entry_bytes,
        hint: entry_hint(status),
    };
    vec![in_use, namespace, at_limit, entry]
}

/// How one entry's cost is made up: its slab object, the extension area and why, the bucket.
fn entry_hint(status: &ConntrackStatus) -> String {
    let memory = &status.memory;
    let Some(object) = memory.object_bytes else {
        return "the nf_conntrack slab could not be read".to_owned();
    };
    let extension = if memory.extensions.is_empty() {
        "no extension area (no NAT, event listener, accounting or helper in use)".to_owned()
    } else {
        let reasons: Vec<&str> = memory.extensions.iter().map(|e| e.describe()).collect();
        format!(
            "+ {} B extension area for {}",
            memory.extension_bytes,
            reasons.join(", ")
        )
    };
    format!("{object} B slab object {extension}; plus 8 B per hash bucket")
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

#[cfg(test)]
mod tests {
    use ctguard_protocol::status::{EntryExtension, EntryMemory, SlabUsage};

    use super::*;

    fn status(extensions: Vec<EntryExtension>) -> ConntrackStatus {
        let extension_bytes = if extensions.is_empty() { 0 } else { 128 };
        ConntrackStatus {
            count: 1_000,
            max: 65_536,
            buckets: 65_536,
            stats: Default::default(),
            entry_bytes: Some(256 + extension_bytes),
            host_memory_bytes: 8 << 30,
            per_cpu: Vec::new(),
            identity: None,
            memory: EntryMemory {
                object_bytes: Some(256),
                extension_bytes,
                extensions,
                slab: Some(SlabUsage {
                    active_objects: 3_000,
                    total_objects: 3_072,
                    object_bytes: 256,
                    bytes: 3_072 * 256,
                }),
            },
        }
    }

    fn figure<'a>(figures: &'a [MemoryFigure], testid: &str) -> &'a MemoryFigure {
        figures.iter().find(|f| f.testid == testid).expect("shown")
    }

    #[test]
    fn every_figure_says_whose_table_it_counts() {
        let figures = memory_figures(&status(vec![]));
        assert!(figure(&figures, "memory").hint.contains("every namespace"));
        assert!(
            figure(&figures, "memory-namespace")
                .label
                .contains("this namespace")
        );
        let limit = &figure(&figures, "memory-limit").hint;
        assert!(limit.contains("this namespace's table"));
        assert!(limit.contains("each namespace may hold up to the limit"));
    }

    #[test]
    fn in_use_comes_from_the_slab_not_the_count() {
        let figures = memory_figures(&status(vec![EntryExtension::Nat]));
        // 3,000 slab objects of 384 B and 65,536 buckets of 8 B, not 1,000 entries.
        assert_eq!(
            figure(&figures, "memory").value,
            format::bytes(3_000 * 384 + 65_536 * 8)
        );
        assert_eq!(
            figure(&figures, "memory-namespace").value,
            format::bytes(1_000 * 384)
        );
        assert_eq!(
            figure(&figures, "memory-limit").value,
            format::bytes(65_536 * 384 + 65_536 * 8)
        );
    }

    #[test]
    fn one_entry_names_its_extension_area_and_why() {
        let plain = memory_figures(&status(vec![]));
        assert_eq!(figure(&plain, "memory-entry").value, "256 B");
        assert!(
            figure(&plain, "memory-entry")
                .hint
                .contains("no extension area")
        );
        let listening = memory_figures(&status(vec![EntryExtension::EventListener]));
        let entry = figure(&listening, "memory-entry");
        assert_eq!(entry.value, "384 B");
        assert!(entry.hint.contains("128 B extension area"));
        assert!(entry.hint.contains("event listener"));
        assert!(entry.hint.contains("8 B per hash bucket"));
    }

    #[test]
    fn without_the_slab_the_cost_is_unknown_not_guessed() {
        let mut unread = status(vec![]);
        unread.entry_bytes = None;
        unread.memory = EntryMemory::default();
        let figures = memory_figures(&unread);
        for testid in ["memory", "memory-namespace", "memory-limit", "memory-entry"] {
            assert_eq!(figure(&figures, testid).value, "unknown", "{testid}");
        }
    }
}
