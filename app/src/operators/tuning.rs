//! The Tuning page's data: every allowlisted sysctl with its live, persisted, default and
//! recommended value, the last value the panel set (from the audit log) and whether something else
//! has changed it since, and the two steps (preview, confirm) of a change. The server implements
//! [`ssr::SettingsSource`]. The page is in [`page`], the recommendation maths in [`advice`].

pub mod advice;
pub mod page;

use ctguard_protocol::{SysctlKey, SysctlScope};
use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};

use crate::{confirm::Preview, dashboard::history::History, operators::operations::Operation};

/// A sysctl change the panel carried out, as its audit record keeps it (JSON in `arguments`):
/// what a revert puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSysctl {
    pub key: SysctlKey,
    pub previous: u64,
    pub value: u64,
    pub persist: bool,
}

/// The panel's last successful change of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSet {
    pub value: u64,
    pub actor: String,
    /// Unix seconds.
    pub at: i64,
    pub audit_id: i64,
}

/// One row of the Tuning page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRow {
    pub key: SysctlKey,
    /// `None`: this kernel has no such file.
    pub current: Option<u64>,
    /// The value in the helper's sysctl.d file, applied at boot.
    pub persisted: Option<u64>,
    pub recommended: Option<u64>,
    pub reasoning: String,
    /// What following the recommendation costs; empty without one.
    #[serde(default)]
    pub cost: String,
    /// When the recommendation is wrong for a host; empty without one.
    #[serde(default)]
    pub wrong_when: String,
    pub last_set: Option<LastSet>,
}

impl SettingRow {
    /// Something other than the panel (kube-proxy, a sysctl.d file at boot, a person with a shell)
    /// changed the value after the panel last set it.
    pub fn changed_behind_our_back(&self) -> bool {
        matches!((self.current, &self.last_set), (Some(now), Some(set)) if now != set.value)
    }
}

/// The groups the page shows, in order: the table, its timeouts, and the neighbour (ARP) table,
/// which fills for its own reasons and is tuned apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingGroup {
    TableSize,
    Timeouts,
    Neighbours,
}

impl SettingGroup {
    pub const ALL: [SettingGroup; 3] = [Self::TableSize, Self::Timeouts, Self::Neighbours];

    pub fn of(key: SysctlKey) -> Self {
        match key {
            SysctlKey::NfConntrackMax | SysctlKey::NfConntrackBuckets => Self::TableSize,
            SysctlKey::NeighGcThresh1
            | SysctlKey::NeighGcThresh2
            | SysctlKey::NeighGcThresh3
            | SysctlKey::NeighGcStaleTime => Self::Neighbours,
            _ => Self::Timeouts,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::TableSize => "Table size",
            Self::Timeouts => "Timeouts",
            Self::Neighbours => "Neighbour table",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Self::TableSize => {
                "How many entries the table may hold and how many hash buckets find them. Both are \
                 global: one value for the whole host, whatever namespace the helper watches."
            }
            Self::Timeouts => {
                "How long an idle entry stays. Long timeouts keep dead connections in the table; \
                 these are set in the watched network namespace."
            }
            Self::Neighbours => {
                "The IPv4 neighbour (ARP) table, apart from conntrack, with its own message: the \
                 kernel logs \"arp_cache: neighbor table overflow!\" past gc_thresh3. Raise \
                 gc_thresh3 above the number of neighbours on the host's links. IPv6 (NDP, \
                 \"ndisc_cache\") has separate keys under net.ipv6.neigh.default. Global: these \
                 defaults live in the initial namespace."
            }
        }
    }
}

/// Where a key applies, in words.
pub fn scope_words(key: SysctlKey) -> &'static str {
    match key.scope() {
        SysctlScope::Global => "host-wide",
        SysctlScope::PerNamespace => "watched namespace",
    }
}

/// The Tuning page's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningView {
    pub rows: Vec<SettingRow>,
    /// Entries in the table now, and the bytes one takes (from the slab cache), for memory costs.
    pub count: u64,
    pub entry_bytes: Option<u64>,
    pub host_memory_bytes: u64,
    /// The highest count of the last 24 hours the limit's advice rests on.
    #[serde(default)]
    pub peak_24h: Option<u64>,
}

/// The highest entry count a history holds: the per-minute peaks of the day and the recent
/// per-second points (whose minute may not be folded yet). `None` for an empty history.
pub fn peak_of(history: &History) -> Option<u64> {
    let minutes = history.minutes.iter().map(|minute| minute.count);
    let recent = history.recent.iter().map(|point| point.count);
    minutes.chain(recent).max()
}

#[server]
pub async fn load_tuning() -> Result<TuningView, ServerFnError> {
    let source = ssr::source().await?;
    source
        .view(ssr::peak_24h())
        .await
        .map_err(|e| e.into_server_error())
}

/// Step one for sysctl changes: the same as
/// [`preview_operation`](crate::operators::operations::preview_operation) behind a route only
/// admins reach, so the server's route table is the first lock on tuning too. (Fixed endpoint names:
/// the end-to-end suite calls them directly to check the refusal.)
#[server(input = Json, endpoint = "preview_tuning")]
pub async fn preview_tuning(operation: Operation) -> Result<Preview, ServerFnError> {
    ssr::tuner()
        .await?
        .preview(operation)
        .await
        .map_err(|e| e.into_server_error())
}

/// Step two for sysctl changes.
#[server(input = Json, endpoint = "apply_tuning")]
pub async fn apply_tuning(token: String, operation: Operation) -> Result<String, ServerFnError> {
    ssr::tuner()
        .await?
        .apply(token, operation)
        .await
        .map_err(|e| e.into_server_error())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use leptos::prelude::*;

    use super::TuningView;
    use crate::{
        admin::users::ssr::AdminError, auth::Permission,
        operators::operations::ssr::SharedTableOperations, session::require,
    };

    #[async_trait::async_trait]
    pub trait SettingsSource: Send + Sync + std::fmt::Debug {
        /// The rows, with recommendations resting on `peak_24h` (see [`peak_24h`]).
        async fn view(&self, peak_24h: Option<u64>) -> Result<TuningView, AdminError>;
    }

    /// The day's peak from the dashboard's history, where the server keeps one (it is the
    /// evidence the limit's advice rests on; the sampler extends it every second).
    pub fn peak_24h() -> Option<u64> {
        use_context::<crate::dashboard::ssr::SharedHistory>()
            .and_then(|history| super::peak_of(&history.snapshot()))
    }

    pub type SharedSettingsSource = Arc<dyn SettingsSource>;

    /// Everyone who sees the table sees its settings; changing them is the admins' (checked per
    /// operation).
    pub async fn source() -> Result<SharedSettingsSource, ServerFnError> {
        require(Permission::ViewTable).await?;
        Ok(expect_context::<SharedSettingsSource>())
    }

    /// Admins alone reach the sysctl changes' two steps (the route is the first lock; the
    /// operations check [`crate::operators::operations::Operation::permission`] again).
    pub async fn tuner() -> Result<SharedTableOperations, ServerFnError> {
        require(Permission::Tune).await?;
        Ok(expect_context::<SharedTableOperations>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(current: Option<u64>, last: Option<u64>) -> SettingRow {
        SettingRow {
            key: SysctlKey::TcpTimeoutEstablished,
            current,
            persisted: None,
            recommended: None,
            reasoning: String::new(),
            cost: String::new(),
            wrong_when: String::new(),
            last_set: last.map(|value| LastSet {
                value,
                actor: "ada".into(),
                at: 0,
                audit_id: 1,
            }),
        }
    }

    #[test]
    fn a_value_differing_from_what_the_panel_set_was_changed_behind_its_back() {
        assert!(row(Some(432_000), Some(7_440)).changed_behind_our_back());
        assert!(!row(Some(7_440), Some(7_440)).changed_behind_our_back());
        assert!(
            !row(Some(432_000), None).changed_behind_our_back(),
            "never set by us"
        );
        assert!(
            !row(None, Some(7_440)).changed_behind_our_back(),
            "unreadable is not a change"
        );
    }

    #[test]
    fn the_peak_is_the_highest_count_of_the_day_and_the_recent_points() {
        use crate::{dashboard::history::MinutePoint, dashboard::trend::Point};
        assert_eq!(peak_of(&History::default()), None);
        let mut history = History::default();
        history.minutes.push_back(MinutePoint {
            at_ms: 0,
            count: 8_700,
            max: 65_536,
        });
        history.minutes.push_back(MinutePoint {
            at_ms: 60_000,
            count: 1_200,
            max: 65_536,
        });
        history.recent.push_back(Point {
            at_ms: 61_000,
            count: 9_000,
            max: 65_536,
            ..Point::default()
        });
        assert_eq!(peak_of(&history), Some(9_000));
        history.recent.clear();
        assert_eq!(
            peak_of(&history),
            Some(8_700),
            "an earlier minute's peak counts"
        );
    }

    #[test]
    fn the_neighbour_group_uses_the_kernels_words() {
        let text = SettingGroup::Neighbours.explanation();
        assert!(text.contains("neighbor table overflow!"), "{text}");
        assert!(!text.contains("neighbour table overflow"), "{text}");
        assert!(
            text.contains("net.ipv6.neigh.default"),
            "NDP's keys are separate"
        );
    }

    #[test]
    fn every_key_has_a_group() {
        for group in SettingGroup::ALL {
            assert!(
                SysctlKey::ALL
                    .iter()
                    .any(|&key| SettingGroup::of(key) == group),
                "{group:?} is empty"
            );
        }
        assert_eq!(
            SettingGroup::of(SysctlKey::NeighGcStaleTime),
            SettingGroup::Neighbours
        );
    }
}
