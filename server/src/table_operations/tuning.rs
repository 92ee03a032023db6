//! Sysctl changes and their reverts, planned from the live values: before → after with units, the
//! memory a new table limit costs, the buckets a raised limit brings along, and the warnings an
//! admin should read before confirming. An established-TCP timeout below RFC 5382's floor takes
//! two confirmations.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex, PoisonError},
};

use ctguard_app::{
    admin::users::ssr::AdminError,
    format,
    operators::{
        operations::Operation,
        tuning::{
            AppliedSysctl, LastSet, SettingRow, TuningView,
            advice::{self as tuning, Observed, RFC5382_ESTABLISHED_FLOOR_SECS},
            ssr::SettingsSource,
        },
    },
};
use ctguard_protocol::{
    ConntrackModule, ConntrackStatus, Request, Response, SetSysctlRequest, SysctlKey,
    SysctlReading, SysctlScope,
};

use super::{Plan, TableOperator, from_helper, from_helper_change, invalid};
use crate::{confirmation::TOKEN_LIFETIME_SECS, helper_client::unexpected, requester::requester};

/// The audit actions whose successful records hold an [`AppliedSysctl`] in `arguments`.
pub const SYSCTL_ACTIONS: [&str; 2] = ["set_sysctl", "revert_sysctl"];
/// How far back the Tuning page looks for the panel's own changes.
const LAST_SET_LOOKBACK: i64 = 1_000;

/// Below-floor values an admin has confirmed once, by (login, key, value), until when (Unix
/// seconds). The second confirmation is a fresh preview and token, so the first one's consent must
/// outlive its token: kept here, per process, for the default confirmation lifetime. Process-wide
/// because it is keyed by the login, which is random per session.
static FIRST_CONFIRMATIONS: LazyLock<Mutex<FirstConfirmations>> = LazyLock::new(Mutex::default);
/// (login, key, value) → until (Unix seconds).
type FirstConfirmations = HashMap<(String, SysctlKey, u64), i64>;
/// Consents beyond this are dropped, oldest first.
const MAX_FIRST_CONFIRMATIONS: usize = 1_000;

fn first_confirmations() -> std::sync::MutexGuard<'static, FirstConfirmations> {
    FIRST_CONFIRMATIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Whether this login confirmed this value once and may now confirm it a second time.
fn confirmed_once(login: &str, key: SysctlKey, value: u64, now: i64) -> bool {
    first_confirmations()
        .get(&(login.to_owned(), key, value))
        .is_some_and(|&until| until > now)
}

fn record_first_confirmation(login: &str, key: SysctlKey, value: u64, now: i64) {
    let mut consents = first_confirmations();
    consents.retain(|_, until| *until > now);
    if consents.len() >= MAX_FIRST_CONFIRMATIONS
        && let Some(oldest) = consents
            .iter()
            .min_by_key(|(_, until)| **until)
            .map(|(consent, _)| consent.clone())
    {
        consents.remove(&oldest);
    }
    consents.insert((login.to_owned(), key, value), now + TOKEN_LIFETIME_SECS);
}

fn take_first_confirmation(login: &str, key: SysctlKey, value: u64, now: i64) -> bool {
    first_confirmations()
        .remove(&(login.to_owned(), key, value))
        .is_some_and(|until| until > now)
}

/// A write the helper is asked to do, once an operation (or the audit record it reverts) is
/// resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlWrite {
    pub key: SysctlKey,
    pub value: u64,
    pub persist: bool,
}

impl TableOperator {
    /// Every allowlisted setting as the helper reads it now, and how nf_conntrack is in the
    /// kernel (how the hash size persists).
    pub(super) async fn sysctls_now(
        &self,
    ) -> Result<(Vec<SysctlReading>, ConntrackModule), AdminError> {
        match self
            .helper
            .call(Request::ReadSysctls {})
            .await
            .map_err(from_helper)?
        {
            Response::Sysctls { readings, module } => Ok((readings, module)),
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
        let (readings, module) = self.sysctls_now().await?;
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
        let persisted_of = |wanted: SysctlKey| {
            readings
                .iter()
                .find(|r| r.key == wanted)
                .and_then(|r| r.persisted)
        };
        let buckets_now = value_of(SysctlKey::NfConntrackBuckets).unwrap_or(status.buckets);
        let mut changes = vec![format!(
            "{key}: {} → {}",
            tuning::with_unit(key, current),
            tuning::with_unit(key, value)
        )];
        // A raised limit whose chains would pass 4 brings the buckets along, written first.
        let companion = match key {
            SysctlKey::NfConntrackMax => tuning::buckets_for_new_limit(value, buckets_now),
            _ => None,
        };
        if let Some(buckets) = companion {
            changes.push(format!(
                "{}: {} → {}, in the same change: {}; the kernel refuses an insert on a chain \
                 over about {} (chaintoolong): {}. With {} the chains stay at {:.1}; a revert \
                 of this change puts back only the limit, the buckets stay",
                SysctlKey::NfConntrackBuckets,
                tuning::with_unit(SysctlKey::NfConntrackBuckets, buckets_now),
                tuning::with_unit(SysctlKey::NfConntrackBuckets, buckets),
                tuning::chains_in_words(value, buckets_now),
                tuning::KERNEL_MIN_CHAINLEN,
                tuning::refusals_in_words(value, buckets_now),
                tuning::with_unit(SysctlKey::NfConntrackBuckets, buckets),
                tuning::chain_at_full(value, buckets),
            ));
        }
        changes.push(if persist {
            match key {
                SysctlKey::NfConntrackBuckets => {
                    hashsize_persistence(value, persisted_of(SysctlKey::NfConntrackMax), module)
                }
                _ if companion.is_some() && module == ConntrackModule::BuiltIn => {
                    "kept after reboot: both written to the helper's sysctl.d file (nf_conntrack \
                     is built into this kernel: no module option is written)"
                        .to_owned()
                }
                _ if companion.is_some() => "kept after reboot: both written to the helper's \
                     sysctl.d file, the buckets also as the nf_conntrack hashsize module option"
                    .to_owned(),
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
        let mut stage = "";
        match key {
            SysctlKey::NfConntrackMax => {
                if let Some(entry) = status.entry_bytes {
                    let per_entry = tuning::bytes_per_entry(entry);
                    changes.push(format!(
                        "a full table would take {} of kernel memory (now {}): {} per entry, its \
                         slab object and its bucket",
                        format::bytes(value.saturating_mul(per_entry)),
                        format::bytes(current.saturating_mul(per_entry)),
                        format::bytes(per_entry),
                    ));
                }
                warnings.push(
                    "The limit applies to each network namespace's own table: N namespaces may \
                     hold up to N × the limit in the one shared hash."
                        .to_owned(),
                );
                if value < status.count {
                    warnings.push(format!(
                        "The table holds {} entries, more than the new limit: new connections are dropped until it drains.",
                        format::thousands(status.count)
                    ));
                }
                let peak = ctguard_app::operators::tuning::ssr::peak_24h()
                    .unwrap_or(0)
                    .max(status.count);
                if value < peak.saturating_mul(tuning::PEAK_HEADROOM) && value >= status.count {
                    warnings.push(format!(
                        "Less than twice the 24-hour peak of {} entries: a burst like it fills the table.",
                        format::thousands(peak)
                    ));
                }
                if let Some(ceiling) = tuning::memory_ceiling(&status)
                    && value > ceiling
                {
                    warnings.push(format!(
                        "More than {} entries: a full table would take over 1/{} of RAM.",
                        format::thousands(ceiling),
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
                    "{:.1} entries per chain at a full table (limit {}, each entry in two chains)",
                    tuning::chain_at_full(status.max, value),
                    format::thousands(status.max)
                ));
                if value < current {
                    warnings.push(format!(
                        "Fewer buckets than now: {}. Nothing is gained but 8 B per bucket.",
                        tuning::chains_in_words(status.max, value)
                    ));
                }
                if tuning::chain_at_full(status.max, value) > tuning::MAX_CHAIN_AT_FULL {
                    warnings.push(format!(
                        "Chains over {:.0} at a full table; the kernel refuses inserts on chains \
                         over about {} (chaintoolong): {}.",
                        tuning::MAX_CHAIN_AT_FULL,
                        tuning::KERNEL_MIN_CHAINLEN,
                        tuning::refusals_in_words(status.max, value)
                    ));
                }
            }
            SysctlKey::TcpTimeoutEstablished if value < RFC5382_ESTABLISHED_FLOOR_SECS => {
                warnings.push(format!(
                    "Below RFC 5382's floor of {}: idle connections through NAT (SSH, databases) will break.",
                    tuning::duration(RFC5382_ESTABLISHED_FLOOR_SECS)
                ));
                let login = requester().await?.login.0;
                if confirmed_once(&login, key, value, self.clock.now()) {
                    stage = ";second";
                    changes.push(
                        "second confirmation: you confirmed this value below the floor once"
                            .to_owned(),
                    );
                } else {
                    stage = ";first";
                    warnings.push(
                        "This needs two confirmations. Confirming this preview changes nothing \
                         yet; the panel then asks a second time."
                            .to_owned(),
                    );
                }
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
        let title = if stage == ";second" {
            format!("{title} (second confirmation)")
        } else {
            title
        };
        Ok(Plan {
            title,
            changes,
            warnings,
            // Someone else changing the value (or, for the limit, the buckets it may bring along)
            // between preview and confirm makes the preview stale; so does a first confirmation
            // given in between.
            fingerprint: match key {
                SysctlKey::NfConntrackMax => format!("{key}={current};buckets={buckets_now}"),
                _ => format!("{key}={current}{stage}"),
            },
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
        if tuning::needs_second_confirmation(write.key, write.value) {
            let login = requester().await?.login.0;
            let now = self.clock.now();
            if !take_first_confirmation(&login, write.key, write.value, now) {
                record_first_confirmation(&login, write.key, write.value, now);
                // No ": " in the message: the UI shows what follows the last one.
                return Err(invalid(format!(
                    "{}. {} is below RFC 5382's floor of {}, so nothing was changed yet. Review \
                     it again and confirm a second time to apply it.",
                    tuning::FIRST_OF_TWO_CONFIRMATIONS,
                    tuning::with_unit(write.key, write.value),
                    tuning::duration(RFC5382_ESTABLISHED_FLOOR_SECS)
                )));
            }
        }
        let mut brought_along = None;
        if write.key == SysctlKey::NfConntrackMax {
            let buckets_now = self
                .sysctls_now()
                .await?
                .0
                .iter()
                .find(|r| r.key == SysctlKey::NfConntrackBuckets)
                .and_then(|r| r.value);
            // Buckets first: the chains never pass 4 on the way.
            if let Some(buckets) =
                buckets_now.and_then(|now| tuning::buckets_for_new_limit(write.value, now))
            {
                let request = Request::SetSysctl(SetSysctlRequest {
                    key: SysctlKey::NfConntrackBuckets,
                    value: buckets,
                    persist: write.persist,
                    actor: actor.clone(),
                    requested_by,
                });
                match self
                    .helper
                    .call(request)
                    .await
                    .map_err(from_helper_change)?
                {
                    Response::Sysctl { value, .. } => brought_along = Some(value),
                    other => return Err(from_helper(unexpected(&other))),
                }
            }
        }
        let request = Request::SetSysctl(SetSysctlRequest {
            key: write.key,
            value: write.value,
            persist: write.persist,
            actor,
            requested_by,
        });
        match self
            .helper
            .call(request)
            .await
            .map_err(from_helper_change)?
        {
            Response::Sysctl {
                key,
                previous,
                value,
                persisted,
                journal,
            } => {
                let applied = AppliedSysctl {
                    key,
                    previous,
                    value,
                    persist: persisted,
                };
                Ok(super::Executed {
                    message: format!(
                        "{key} is now {} (was {}){}{}.",
                        tuning::with_unit(key, value),
                        tuning::with_unit(key, previous),
                        brought_along.map_or_else(String::new, |buckets| format!(
                            "; {} is now {}",
                            SysctlKey::NfConntrackBuckets,
                            tuning::with_unit(SysctlKey::NfConntrackBuckets, buckets)
                        )),
                        if persisted { ", kept after reboot" } else { "" }
                    ),
                    journal,
                    arguments: serde_json::to_string(&applied).ok(),
                })
            }
            other => Err(from_helper(unexpected(&other))),
        }
    }
}

#[async_trait::async_trait]
impl SettingsSource for TableOperator {
    async fn view(&self, peak_24h: Option<u64>) -> Result<TuningView, AdminError> {
        self.spend_a_walk().await?;
        let (readings, module) = self.sysctls_now().await?;
        let status = self.status_now().await?;
        let observed = Observed {
            peak_24h,
            established: self.established_share(&status).await,
            module,
        };
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
        let recommendations = tuning::recommend(&status, &observed, &current);
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
                    cost: recommendation.map(|r| r.cost.clone()).unwrap_or_default(),
                    wrong_when: recommendation
                        .map(|r| r.wrong_when.clone())
                        .unwrap_or_default(),
                    last_set: last_set(reading.key),
                }
            })
            .collect();
        Ok(TuningView {
            rows,
            count: status.count,
            entry_bytes: status.entry_bytes,
            host_memory_bytes: status.host_memory_bytes,
            peak_24h,
        })
    }
}

impl TableOperator {
    /// ESTABLISHED entries and all entries from one walk, taken only when the table is near full
    /// (the only case the established-timeout advice looks at them): a walk of a big table is not
    /// free, and the helper shares it with the Suspicious page.
    async fn established_share(&self, status: &ConntrackStatus) -> Option<(u64, u64)> {
        let near_full = status.max > 0
            && status.count.saturating_mul(100) >= status.max * tuning::STALE_FILL_PERCENT;
        if !near_full {
            return None;
        }
        match self.helper.call(Request::Snapshot {}).await {
            Ok(Response::Snapshot { snapshot }) => {
                Some((snapshot.total.established, snapshot.total.entries))
            }
            Ok(_) => {
                tracing::warn!("unexpected answer to a snapshot request");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "no table walk for the tuning advice");
                None
            }
        }
    }
}

/// What persisting the buckets as `hashsize` does at the next boot: nf_conntrack_init_start sets
/// max = 8 × hashsize when the option is given, so the limit changes too unless sysctl.d sets it.
fn hashsize_persistence(
    buckets: u64,
    persisted_max: Option<u64>,
    module: ConntrackModule,
) -> String {
    let at_load = buckets.saturating_mul(tuning::HASHSIZE_MAX_FACTOR);
    if module == ConntrackModule::BuiltIn {
        // No module option to write: the sysctl.d file resizes the hash at boot, and the limit
        // stays what sysctl.d (or the kernel's default) makes it.
        return format!(
            "kept after reboot: the helper's sysctl.d file resizes the hash once systemd-sysctl \
             runs at boot. nf_conntrack is built into this kernel, so no modprobe.d option is \
             written (it would have no effect); to size the hash from the start, add \
             nf_conntrack.hashsize={buckets} to the kernel command line (which also sets the \
             limit to {} × hashsize = {} entries unless sysctl.d sets it)",
            tuning::HASHSIZE_MAX_FACTOR,
            format::thousands(at_load),
        );
    }
    let limit = match persisted_max {
        Some(max) => format!(
            "the helper's sysctl.d file then sets it to {} once systemd-sysctl runs after the module loaded",
            format::thousands(max)
        ),
        None => format!(
            "nothing persists the limit, so after a reboot it is {} entries (chains of 16 at a \
             full table): persist the limit too",
            format::thousands(at_load)
        ),
    };
    format!(
        "kept after reboot: the helper's sysctl.d file and the nf_conntrack hashsize module \
         option, which also sets the limit at load: max = {} × hashsize = {} entries; {limit}{}",
        tuning::HASHSIZE_MAX_FACTOR,
        format::thousands(at_load),
        if module == ConntrackModule::Unknown {
            format!(
                ". Where nf_conntrack is built into the kernel, a modprobe.d option has no \
                 effect: the kernel command line needs nf_conntrack.hashsize={buckets}"
            )
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_buckets_name_modprobe_for_a_module_and_the_command_line_when_built_in() {
        let module = hashsize_persistence(262_144, None, ConntrackModule::Loadable);
        assert!(module.contains("hashsize module option"), "{module}");
        assert!(!module.contains("kernel command line"), "{module}");
        let built_in = hashsize_persistence(262_144, Some(65_536), ConntrackModule::BuiltIn);
        assert!(
            built_in.contains("no modprobe.d option is written")
                && built_in.contains("nf_conntrack.hashsize=262144"),
            "{built_in}"
        );
        let unknown = hashsize_persistence(262_144, None, ConntrackModule::Unknown);
        assert!(
            unknown.contains("hashsize module option") && unknown.contains("kernel command line"),
            "{unknown}"
        );
    }
}
