//! What operators see and do about the table's fillers: the suspicious sources of a snapshot, the
//! entries behind one, the active blocks, and the two-step (preview, then confirm) block, unblock
//! and delete-entries operations. The server implements [`ssr::TableOperations`]; these server
//! functions check the role again and delegate. (Tuning's two steps go through the same trait
//! from [`crate::operators::tuning`].)

use ctguard_protocol::{
    ActiveBlock, BlockTarget, SysctlKey,
    snapshot::{ConntrackEntry, StateMix, TopList},
};
use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};

use crate::{
    auth,
    confirm::Preview,
    operators::creators::CreatorsView,
    operators::suspicion::{Suspect, Victim},
    operators::trace::TraceView,
};

/// The Suspicious sources page's data: one snapshot, assessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectsView {
    pub taken_unix_ms: u64,
    pub walk_ms: u64,
    pub total: StateMix,
    pub suspects: Vec<Suspect>,
    /// The destinations many sources converge on (issue 14: distributed attacks).
    pub victims: Vec<Victim>,
    pub dports: TopList<u16>,
    pub protocols: TopList<String>,
}

/// The entries of one address, for drill-down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntriesView {
    pub entries: Vec<ConntrackEntry>,
    /// More matched than were listed.
    pub truncated: bool,
}

/// How many entries a drill-down lists at most.
pub const DRILL_DOWN_LIMIT: u32 = 200;

/// The durations the block form offers, in seconds, with their labels.
pub const DURATIONS: [(u64, &str); 5] = [
    (600, "10 minutes"),
    (3_600, "1 hour"),
    (6 * 3_600, "6 hours"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
];

/// Every change operators and admins make to the kernel from the panel. Targets are written as the
/// protocol parses them, e.g. `from 203.0.113.66` or `udp from 50.2.6.12 sport 53`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    Block {
        target: String,
        duration_secs: u64,
        reason: String,
    },
    Unblock {
        target: BlockTarget,
    },
    DeleteEntries {
        target: String,
        reason: String,
    },
    /// Writes an allowlisted sysctl; `persist` also keeps it across reboots.
    SetSysctl {
        key: SysctlKey,
        value: u64,
        persist: bool,
    },
    /// Puts back the value a successful sysctl change (the audit record `audit_id`) replaced.
    RevertSysctl {
        audit_id: i64,
    },
    /// Counts the new flows matching `filter` (a block target's text form, parsed on the server)
    /// for `seconds`; nothing is logged to syslog (issue 15).
    StartTrace {
        filter: String,
        seconds: u32,
        reason: String,
    },
    /// Ends the running trace now.
    StopTrace {},
}

impl Operation {
    /// The audit log's name for it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Block { .. } => "block",
            Self::Unblock { .. } => "unblock",
            Self::DeleteEntries { .. } => "delete_entries",
            Self::SetSysctl { .. } => "set_sysctl",
            Self::RevertSysctl { .. } => "revert_sysctl",
            Self::StartTrace { .. } => "start_trace",
            Self::StopTrace {} => "stop_trace",
        }
    }

    /// What the role of whoever asks must allow.
    pub fn permission(&self) -> auth::Permission {
        match self {
            Self::Block { .. }
            | Self::Unblock { .. }
            | Self::DeleteEntries { .. }
            | Self::StartTrace { .. }
            | Self::StopTrace {} => auth::Permission::Block,
            Self::SetSysctl { .. } | Self::RevertSysctl { .. } => auth::Permission::Tune,
        }
    }
}

// A stable path: bench/under-attack.sh refreshes it as the Suspicious page does.
#[server(endpoint = "suspects")]
pub async fn suspects() -> Result<SuspectsView, ServerFnError> {
    ssr::viewer()
        .await?
        .suspects()
        .await
        .map_err(|e| e.into_server_error())
}

/// Who creates entries fastest (issue 15): the helper's counts, no walk of the table (the
/// helper answers from memory, so this is not one of a session's expensive reads).
#[server]
pub async fn list_creators() -> Result<CreatorsView, ServerFnError> {
    ssr::viewer()
        .await?
        .creators()
        .await
        .map_err(|e| e.into_server_error())
}

/// The running trace's counts, or the last one's final counts (issue 15): viewers and up; the
/// page asks every [`crate::operators::trace::POLL_SECS`] while a trace runs.
#[server]
pub async fn read_trace() -> Result<TraceView, ServerFnError> {
    ssr::viewer()
        .await?
        .trace()
        .await
        .map_err(|e| e.into_server_error())
}

#[server]
pub async fn entries_of(network: String) -> Result<EntriesView, ServerFnError> {
    ssr::viewer()
        .await?
        .entries_of(network)
        .await
        .map_err(|e| e.into_server_error())
}

#[server]
pub async fn active_blocks() -> Result<Vec<ActiveBlock>, ServerFnError> {
    ssr::viewer()
        .await?
        .blocks()
        .await
        .map_err(|e| e.into_server_error())
}

/// Step one: what the operation would do, and the token that confirms it. (Fixed endpoint names
/// for every change, as for tuning below: the end-to-end suite asks them directly to check that
/// the server refuses the wrong role.)
#[server(input = Json, endpoint = "preview_operation")]
pub async fn preview_operation(operation: Operation) -> Result<Preview, ServerFnError> {
    ssr::operator()
        .await?
        .preview(operation)
        .await
        .map_err(|e| e.into_server_error())
}

/// Step two: carries out a previewed operation; returns what happened, in words.
#[server(input = Json, endpoint = "apply_operation")]
pub async fn apply_operation(token: String, operation: Operation) -> Result<String, ServerFnError> {
    ssr::operator()
        .await?
        .apply(token, operation)
        .await
        .map_err(|e| e.into_server_error())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use ctguard_protocol::ActiveBlock;
    use leptos::prelude::*;

    use super::{EntriesView, Operation, SuspectsView};
    use crate::{
        admin::users::ssr::AdminError, auth::Permission, confirm::Preview,
        operators::creators::CreatorsView, operators::trace::TraceView, session::require,
    };

    #[async_trait::async_trait]
    pub trait TableOperations: Send + Sync + std::fmt::Debug {
        async fn suspects(&self) -> Result<SuspectsView, AdminError>;
        async fn creators(&self) -> Result<CreatorsView, AdminError>;
        async fn trace(&self) -> Result<TraceView, AdminError>;
        async fn entries_of(&self, network: String) -> Result<EntriesView, AdminError>;
        async fn blocks(&self) -> Result<Vec<ActiveBlock>, AdminError>;
        async fn preview(&self, operation: Operation) -> Result<Preview, AdminError>;
        async fn apply(&self, token: String, operation: Operation) -> Result<String, AdminError>;
    }

    pub type SharedTableOperations = Arc<dyn TableOperations>;

    pub async fn viewer() -> Result<SharedTableOperations, ServerFnError> {
        require(Permission::ViewTable).await?;
        Ok(expect_context::<SharedTableOperations>())
    }

    /// Operators and above reach the operations; the implementation checks each operation's own
    /// [`Operation::permission`] and audits a refusal (an operator may block, not tune).
    pub async fn operator() -> Result<SharedTableOperations, ServerFnError> {
        require(Permission::Block).await?;
        Ok(expect_context::<SharedTableOperations>())
    }
}
