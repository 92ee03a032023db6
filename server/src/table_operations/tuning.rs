//! Sysctl changes and their reverts, planned from the live values: before → after with units, the
//! memory a new table limit costs, and the warnings an admin should read before confirming.

use ctguard_app::{
    format,
    operations::Operation,
    settings::{AppliedSysctl, LastSet, SettingRow, TuningView, ssr::SettingsSource},
    tuning::{self, RFC5382_ESTABLISHED_FLOOR_SECS},
    users::ssr::AdminError,
};
use ctguard_protocol::{ConntrackStatus, Request, Response, SysctlKey, SysctlReading, SysctlScope};

use super::{Plan, TableOperator, from_helper, invalid};
use crate::helper_client::unexpected;

/// The audit actions whose successful records hold an [`AppliedSysctl`] in `arguments`.
pub const SYSCTL_ACTIONS: [&str; 2] = ["set_sysctl", "revert_sysctl"];
/// How far back the Tuning page looks for the panel's own changes.
const LAST_SET_LOOKBACK: i64 = 1_000;

/// A write the helper is asked to do, once an operation (or the audit record it reverts) is
/// resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlWrite {
    pub key: SysctlKey,
    pub value: u64,
    pub persist: bool,
}

impl TableOperator {
    pub(super) async fn sysctls_now(&self) -> Result<Vec<SysctlReading>, AdminError> {
        match self
            .helper
            .call(Request::ReadSysctls {})
            .await
            .map_err(from_helper)?
        {
            Response::Sysctls { readings } => Ok(readings),
            other => Err(from_helper(unexpected(&other))),
        }
    }

    pub(super) async fn status_now(&self) -> Result<ConntrackStatus, AdminError> {
        let (status, _helper) = self.helper.status().await.map_err(from_helper)?;
        Ok(status)
    }

    /// What a sysctl operation writes: its own arguments, or for a revert the value the audited
    /// change replaced.
    pub(super) async fn resolve_sysctl(
        &self,
        operation: &Operation,
    ) -> Result<Option<SysctlWrite>, AdminError> {
        match *operation {
            Operation::SetSysctl {
                key,
                value,
                persist,
            } => Ok(Some(SysctlWrite {
                key,
                value,
                persist,
            })),
            Operation::RevertSysctl { audit_id } => {
                let record = self
                    .audit
                    .get(audit_id)
                    .await
                    .map_err(|error| {
                        tracing::error!(%error, "cannot read the audit log");
                        AdminError::Internal
                    })?
                    .ok_or_else(|| invalid(format!("There is no audit record #{audit_id}.")))?;
                let applied = (SYSCTL_ACTIONS.contains(&record.action.as_str())
                    && record.outcome == "success")
                    .then_some(record.arguments.as_deref())
                    .flatten()
                    .and_then(|json| serde_json::from_str::<AppliedSysctl>(json).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "Audit record #{audit_id} is not a successful sysctl change; only those can be reverted."
                        ))
                    })?;
                Ok(Some(SysctlWrite {
                    key: applied.key,
                    value: applied.previous,
                    persist: applied.persist,
                }))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn plan_sysctl(
        &self,
        write: SysctlWrite,
        revert_of: Option<i64>,
    ) -> Result<Plan, AdminError> {
        let SysctlWrite {
            key,
            value,
            persist,
        } = write;
        if let Err(bounds) = key.check(value) {
            return Err(invalid(format!("{bounds}.")));
        }
        let readings = self.sysctls_now().await?;
        let current = readings.iter().find(|r| r.key == key).and_then(|r| r.value);
        let Some(current) = current else {
            return Err(invalid(format!("{key} does not exist on this kernel.")));
        };
        let status = self.status_now().await?;
        let value_of = |wanted: SysctlKey| {
            readings
                .iter()
                .find(|r| r.key == wanted)
                .and_then(|r| r.value)
        };
        let mut changes = vec![format!(
            "{key}: {} → {}",
            tuning::with_unit(key, current),
            tuning::with_unit(key, value)
        )];
        changes.push(if persist {
            match key {
                SysctlKey::NfConntrackBuckets => "kept after reboot: the helper's sysctl.d file and the nf_conntrack hashsize module option".to_owned(),
                _ => "kept after reboot: written to the helper's sysctl.d file".to_owned(),
            }
        } else {
            "not persisted: the next reboot brings back the boot-time value".to_owned()
        });
        let mut warnings = Vec::new();
        if value == current {
            warnings.push("This is already the value: applying it changes nothing.".to_owned());
        }
        if key.scope() == SysctlScope::Global {
            warnings.push("Host-wide: every network namespace on this host shares it.".to_owned());
        }
        match key {
            SysctlKey::NfConntrackMax => {
                if let Some(entry) = status.entry_bytes {
                    changes.push(format!(
                        "a full table would take {} of kernel memory (now {})",
                        format::bytes(value.saturating_mul(entry)),
                        format::bytes(current.saturating_mul(entry))
                    ));
                }
                if value < status.count {
                    warnings.push(format!(
                        "The table holds {} entries, more than the new limit: new connections are dropped until it drains.",
                        format::thousands(status.count)
                    ));
                }
                if let Some(recommended) = tuning::recommended_max(&status)
                    && value > recommended
                {
                    warnings.push(format!(
                        "More than the recommended {}: a full table would take over 1/{} of RAM.",
                        format::thousands(recommended),
                        tuning::MEMORY_SHARE_DIVISOR
                    ));
                }
            }
            SysctlKey::NfConntrackBuckets => {
                warnings.push(
                    "Resizing the hash table moves every entry: expect a short pause in forwarding."
                        .to_owned(),
                );
                changes.push(format!(
                    "{:.1} entries per bucket at a full table (limit {})",
                    status.max as f64 / value.max(1) as f64,
                    format::thousands(status.max)
                ));
            }
            SysctlKey::TcpTimeoutEstablished if value < RFC5382_ESTABLISHED_FLOOR_SECS => {
                warnings.push(format!(
                    "Below RFC 5382's floor of {}: idle connections through NAT (SSH, databases) will break.",
                    tuning::duration(RFC5382_ESTABLISHED_FLOOR_SECS)
                ));
            }
            SysctlKey::NeighGcThresh1 | SysctlKey::NeighGcThresh2 | SysctlKey::NeighGcThresh3 => {
                let mut thresholds = [
                    value_of(SysctlKey::NeighGcThresh1),
                    value_of(SysctlKey::NeighGcThresh2),
                    value_of(SysctlKey::NeighGcThresh3),
                ];
                let index = match key {
                    SysctlKey::NeighGcThresh1 => 0,
                    SysctlKey::NeighGcThresh2 => 1,
                    _ => 2,
                };
                thresholds[index] = Some(value);
                if let [Some(one), Some(two), Some(three)] = thresholds
                    && !(one <= two && two <= three)
                {
                    warnings.push(format!(
                        "gc_thresh1 ≤ gc_thresh2 ≤ gc_thresh3 would no longer hold ({one}, {two}, {three})."
                    ));
                }
            }
            _ => {}
        }
        let title = match revert_of {
            Some(audit_id) => format!("Revert audit record #{audit_id}: {key}"),
            None => format!("Set {key}"),
        };
        Ok(Plan {
            title,
            changes,
            warnings,
            // Someone else changing the value between preview and confirm makes the preview stale.
            fingerprint: format!("{key}={current}"),
        })
    }

    /// Carries out the write: the outcome in words, the helper's journal record, and the
    /// arguments a revert will need.
    pub(super) async fn execute_sysctl(
        &self,
        write: SysctlWrite,
        request_parts: (ctguard_protocol::ShortText, std::net::IpAddr),
    ) -> Result<super::Executed, AdminError> {
        let (actor, requested_by) = request_parts;
        let request = Request::SetSysctl {
            key: write.key,
            value: write.value,
            persist: write.persist,
            actor,
            requested_by,
        };
        match self.helper.call(request).await.map_err(from_helper)? {
            Response::Sysctl {
                key,
                previous,
                value,
                persisted,
                journal_seq,
            } => {
                let applied = AppliedSysctl {
                    key,
                    previous,
                    value,
                    persist: persisted,
                };
                Ok(super::Executed {
                    message: format!(
                        "{key} is now {} (was {}){}.",
                        tuning::with_unit(key, value),
                        tuning::with_unit(key, previous),
                        if persisted { ", kept after reboot" } else { "" }
                    ),
                    journal_seq,
                    arguments: serde_json::to_string(&applied).ok(),
                })
            }
            other => Err(from_helper(unexpected(&other))),
        }
    }
}

#[async_trait::async_trait]
impl SettingsSource for TableOperator {
    async fn view(&self) -> Result<TuningView, AdminError> {
        let readings = self.sysctls_now().await?;
        let status = self.status_now().await?;
        let records = self
            .audit
            .successes_with_arguments(&SYSCTL_ACTIONS, LAST_SET_LOOKBACK)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read the audit log");
                AdminError::Internal
            })?;
        // Newest first: the first record of a key is the panel's last word on it.
        let last_set = |key: SysctlKey| {
            records.iter().find_map(|record| {
                let applied: AppliedSysctl =
                    serde_json::from_str(record.arguments.as_deref()?).ok()?;
                (applied.key == key).then(|| LastSet {
                    value: applied.value,
                    actor: record.actor.clone().unwrap_or_default(),
                    at: record.at,
                    audit_id: record.id,
                })
            })
        };
        let current: Vec<(SysctlKey, u64)> = readings
            .iter()
            .filter_map(|r| Some((r.key, r.value?)))
            .collect();
        let recommendations = tuning::recommend(&status, &current);
        let rows = readings
            .iter()
            .map(|reading| {
                let recommendation = recommendations.iter().find(|r| r.key == reading.key);
                SettingRow {
                    key: reading.key,
                    current: reading.value,
                    persisted: reading.persisted,
                    recommended: recommendation.and_then(|r| r.recommended),
                    reasoning: recommendation.map_or_else(
                        || "This kernel has no such setting.".to_owned(),
                        |r| r.reasoning.clone(),
                    ),
                    last_set: last_set(reading.key),
                }
            })
            .collect();
        Ok(TuningView {
            rows,
            count: status.count,
            entry_bytes: status.entry_bytes,
            host_memory_bytes: status.host_memory_bytes,
        })
    }
}
