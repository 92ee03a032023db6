//! The fill thresholds of the gauge and the banner: configured on the server, sent to the page;
//! and what a fill means for new connections, by the assured share of the limit and the drops.
//!
//! A full table refuses a new connection only when nothing can be evicted for it: `early_drop`
//! (net/netfilter/nf_conntrack_core.c) looks at the few buckets near the new entry's hash
//! (NF_CT_EVICTION_RANGE, 8) and skips every entry marked `IPS_ASSURED` in `early_drop_list`.
//! So a table full of unassured entries (half-open scans, one-packet UDP) evicts them and lets new
//! connections in; a table whose limit is mostly assured entries drops them.

use serde::{Deserialize, Serialize};

/// Fill percentages at which the dashboard warns and alarms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub warning_percent: f64,
    pub critical_percent: f64,
}

impl Default for Thresholds {
    /// 80 % and 95 %: the alarms people already know.
    fn default() -> Self {
        Self {
            warning_percent: 80.0,
            critical_percent: 95.0,
        }
    }
}

/// How worrying a fill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Normal,
    Warning,
    Critical,
}

impl Severity {
    /// The CSS class and test value.
    pub fn class(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl Thresholds {
    pub fn severity(&self, percent: f64) -> Severity {
        if percent >= self.critical_percent {
            Severity::Critical
        } else if percent >= self.warning_percent {
            Severity::Warning
        } else {
            Severity::Normal
        }
    }
}

/// What the assured entries leave for new connections once the table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// No walk has counted them yet.
    Unknown,
    /// Below the warning threshold of the limit: the kernel can evict the rest for new entries.
    Room,
    /// At or above the warning threshold of the limit: once the rest is full, new connections
    /// are dropped.
    Unevictable,
}

impl Thresholds {
    /// The assured share's meaning: the same warning threshold, applied to what cannot go.
    pub fn eviction(&self, assured_percent: Option<f64>) -> Eviction {
        match assured_percent {
            None => Eviction::Unknown,
            Some(percent) if percent >= self.warning_percent => Eviction::Unevictable,
            Some(_) => Eviction::Room,
        }
    }
}

/// The banner's sentence after the fill: what happens to new connections, from the assured share
/// of the limit and whether conntrack's `drop` counter rose over the last seconds.
pub fn consequence(eviction: Eviction, assured_percent: Option<f64>, dropping: bool) -> String {
    let share = || crate::format::percent(assured_percent.unwrap_or(0.0));
    match (eviction, dropping) {
        (Eviction::Unevictable, true) => format!(
            "The kernel is dropping new connections: {} of the limit is assured entries, which \
             it cannot evict (early_drop skips them).",
            share()
        ),
        (Eviction::Unevictable, false) => format!(
            "{} of the limit is assured entries the kernel cannot evict: when the table is full, \
             new connections are dropped.",
            share()
        ),
        (Eviction::Room, true) => format!(
            "conntrack is dropping packets although only {} of the limit is assured: eviction \
             looks only at the few buckets near a new entry (see also insert_failed).",
            share()
        ),
        (Eviction::Room, false) => format!(
            "Only {} of the limit is assured: when the table is full the kernel evicts the other \
             entries to make room (early_drop), so new connections still get in.",
            share()
        ),
        (Eviction::Unknown, true) => {
            "conntrack is dropping packets (see drop); the assured share is not counted yet."
                .to_owned()
        }
        (Eviction::Unknown, false) => "When it is full, the kernel evicts entries that are not \
            assured to make room, and drops new connections when it cannot."
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assured_share_decides_what_a_full_table_does() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.eviction(None), Eviction::Unknown);
        assert_eq!(thresholds.eviction(Some(79.0)), Eviction::Room);
        assert_eq!(thresholds.eviction(Some(80.0)), Eviction::Unevictable);
    }

    #[test]
    fn the_banner_says_dropping_only_when_the_kernel_drops() {
        let dropping = consequence(Eviction::Unevictable, Some(97.0), true);
        assert!(dropping.starts_with("The kernel is dropping new connections"));
        assert!(dropping.contains("97"), "{dropping}");
        assert!(dropping.contains("early_drop skips them"));
        let full = consequence(Eviction::Unevictable, Some(97.0), false);
        assert!(!full.contains("is dropping"), "{full}");
        assert!(full.contains("when the table is full, new connections are dropped"));
        // A table full of what can be evicted lets new connections in.
        let room = consequence(Eviction::Room, Some(5.0), false);
        assert!(room.contains("evicts the other entries to make room (early_drop)"));
        assert!(!room.contains("dropped"), "{room}");
        assert!(consequence(Eviction::Room, Some(5.0), true).contains("insert_failed"));
        assert!(consequence(Eviction::Unknown, None, false).contains("not assured"));
    }

    #[test]
    fn severity_follows_the_default_thresholds() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.severity(0.0), Severity::Normal);
        assert_eq!(thresholds.severity(79.9), Severity::Normal);
        assert_eq!(thresholds.severity(80.0), Severity::Warning);
        assert_eq!(thresholds.severity(94.99), Severity::Warning);
        assert_eq!(thresholds.severity(95.0), Severity::Critical);
        assert_eq!(thresholds.severity(100.0), Severity::Critical);
    }

    #[test]
    fn configured_thresholds_apply() {
        let thresholds = Thresholds {
            warning_percent: 0.05,
            critical_percent: 50.0,
        };
        assert_eq!(thresholds.severity(0.04), Severity::Normal);
        assert_eq!(thresholds.severity(0.1), Severity::Warning);
    }
}
