//! The server's implementation of the operator pages: suspicious sources from one shared snapshot,
//! drill-down, the blocks list, and block / unblock / delete-entries, each previewed from the live
//! table, confirmed with a single-use token, carried out by the helper (which checks everything
//! again), and audited with the preview and the helper's journal record. Sysctl changes and their
//! reverts (admins) go the same way; [`tuning`] plans them.

pub mod tuning;

use std::{str::FromStr, sync::Arc};

use ctguard_app::{
    admin::users::ssr::AdminError,
    confirm::Preview,
    format,
    operators::{
        creators::{CREATORS_LISTED, CreatorsView},
        operations::{
            DRILL_DOWN_LIMIT, EntriesView, Operation, SuspectsView, ssr::TableOperations,
        },
        suspicion,
        trace::TraceView,
    },
};
use ctguard_protocol::{
    ActiveBlock, BlockDuration, BlockRequest, BlockTarget, DeleteEntriesRequest, HelperError,
    JournalRef, Request, Response, ShortText, StartTraceRequest, StopTraceRequest, UnblockRequest,
    snapshot::EntryFilter, trace::MAX_TRACE_SECS,
};

use crate::{
    audit::{Attempt, AuditEvent, AuditStore, Finished, Outcome},
    clock::SharedClock,
    confirmation::{Change, Confirmations, Plan},
    helper_client::{HelperClient, HelperClientError, Lane, unexpected},
    read_limits::ExpensiveReads,
    requester::{Requester, outcome_of, requester},
};

#[derive(Debug, Clone)]
pub struct TableOperator {
    /// A client with a deadline long enough for a table walk or an nft transaction.
    pub helper: HelperClient,
    pub audit: AuditStore,
    pub clock: SharedClock,
    pub confirmations: Arc<Confirmations>,
    /// Each login's share of the reads that walk the table.
    pub expensive_reads: Arc<ExpensiveReads>,
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

/// What a person may be told about a helper failure. The helper's refusals of bad or dangerous
/// arguments (guardrails) are meant for the person asking; anything else stays in the log.
fn from_helper(error: HelperClientError) -> AdminError {
    if let HelperClientError::Unanswered(cause) = error {
        return from_helper(*cause);
    }
    match &error {
        HelperClientError::Failed(HelperError::TraceRunning { filter }) => invalid(format!(
            "A trace of {filter} is already running; stop it before starting another."
        )),
        HelperClientError::Failed(HelperError::NoTrace) => {
            invalid("No trace is running (it may have just ended).")
        }
        HelperClientError::Failed(HelperError::TraceLength { max, .. }) => {
            invalid(format!("A trace lasts 1 s to {} minutes.", max / 60))
        }
        HelperClientError::Failed(refusal) if is_for_the_user(refusal) => {
            invalid(format!("The helper refused: {refusal}."))
        }
        _ => {
            tracing::error!(%error, "helper request failed");
            match error {
                HelperClientError::Connect(_) | HelperClientError::Closed => {
                    invalid("The privileged helper is not reachable; nothing was changed.")
                }
                HelperClientError::Timeout(_) => invalid(
                    "The privileged helper did not answer in time; check the Blocks page before retrying.",
                ),
                // Nothing was sent: the lane stayed full for the whole deadline.
                HelperClientError::Busy(..) => AdminError::TooMany(
                    "The privileged helper is busy; nothing was asked of it. Try again shortly."
                        .to_owned(),
                ),
                _ => AdminError::Internal,
            }
        }
    }
}

/// [`from_helper`] for the request that makes a change: one that went out unanswered may have
/// been carried out, and is said (and audited) to be of unknown outcome, never refused.
fn from_helper_change(error: HelperClientError) -> AdminError {
    match error {
        HelperClientError::Unanswered(cause) => {
            tracing::error!(%cause, "a change went to the helper unanswered: outcome unknown");
            AdminError::OutcomeUnknown(
                "The privileged helper did not answer: the change may or may not have been made. \
                 Check the Blocks page (or the Tuning page) and the Audit page's journal check \
                 before retrying."
                    .to_owned(),
            )
        }
        other => from_helper(other),
    }
}

fn is_for_the_user(error: &HelperError) -> bool {
    matches!(
        error,
        HelperError::EverythingTarget { .. }
            | HelperError::PrefixTooWide { .. }
            | HelperError::Loopback { .. }
            | HelperError::LinkLocal { .. }
            | HelperError::Multicast { .. }
            | HelperError::Unspecified { .. }
            | HelperError::HostAddress { .. }
            | HelperError::RequesterAddress { .. }
            | HelperError::ProtectedNetwork { .. }
            | HelperError::OverlapsBlock { .. }
            | HelperError::NotBlocked { .. }
            | HelperError::TooManyBlocks { .. }
            | HelperError::LimitOutOfRange { .. }
            | HelperError::NeighThresholdOrder { .. }
            | HelperError::ConntrackTableTooLarge { .. }
    )
}

/// What a confirmed operation holds while it is checked and carried out: its target, in its
/// canonical form when it parses (a block and an unblock of one target share it); every sysctl
/// change one target, since their guardrails relate the keys (the neighbour thresholds' order, the
/// table's size against its buckets) and a revert names its key only through its audit record.
fn target_of(operation: &Operation) -> String {
    match operation {
        Operation::Block { target, .. } | Operation::DeleteEntries { target, .. } => {
            let target =
                parse_target(target).map_or_else(|_| target.trim().to_owned(), |t| t.to_string());
            format!("block target {target}")
        }
        Operation::Unblock { target } => format!("block target {target}"),
        Operation::SetSysctl { .. } | Operation::RevertSysctl { .. } => "sysctls".to_owned(),
        // One trace at a time: a start and a stop hold the same lock.
        Operation::StartTrace { .. } | Operation::StopTrace {} => "trace".to_owned(),
    }
}

/// What an operation's audit record names as its target.
fn audit_target(operation: &Operation) -> String {
    match operation {
        Operation::Block { target, .. } | Operation::DeleteEntries { target, .. } => {
            target.trim().to_owned()
        }
        Operation::Unblock { target } => target.to_string(),
        Operation::SetSysctl { key, .. } => key.name().to_owned(),
        Operation::RevertSysctl { audit_id } => format!("audit #{audit_id}"),
        Operation::StartTrace { filter, .. } => filter.trim().to_owned(),
        Operation::StopTrace {} => "trace".to_owned(),
    }
}

/// A trace's filter: a block target's text form, with a sentence for each kind of mistake.
fn parse_filter(text: &str) -> Result<BlockTarget, AdminError> {
    if text.trim().is_empty() {
        return Err(invalid(
            "Say what to trace: an address or network, e.g. `to 198.51.100.10` or `udp from \
             203.0.113.0/24 sport 53`.",
        ));
    }
    BlockTarget::from_str(text.trim()).map_err(|e| {
        invalid(format!(
            "The filter `{}` is not understood: {e}.",
            text.trim()
        ))
    })
}

fn trace_length(seconds: u32) -> Result<u32, AdminError> {
    if (1..=MAX_TRACE_SECS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(invalid(format!(
            "A trace lasts 1 s to {} minutes.",
            MAX_TRACE_SECS / 60
        )))
    }
}

fn parse_target(text: &str) -> Result<BlockTarget, AdminError> {
    BlockTarget::from_str(text.trim()).map_err(|e| invalid(format!("{e}.")))
}

fn short_text(text: &str, what: &str) -> Result<ShortText, AdminError> {
    ShortText::new(text.trim().to_owned()).map_err(|e| invalid(format!("The {what}: {e}.")))
}

/// What the helper did.
struct Executed {
    /// For the person, in words.
    message: String,
    /// The helper's intent record of the change.
    journal: JournalRef,
    /// JSON for the audit record's `arguments`, where a revert will need them.
    arguments: Option<String>,
}

impl TableOperator {
    /// Spends one of the requesting login's expensive reads, or refuses with 429.
    pub(crate) async fn spend_a_walk(&self) -> Result<Requester, AdminError> {
        let who = requester().await?;
        if let Err(over) = self.expensive_reads.spend(&who.login.0) {
            tracing::debug!(user = ?who.user.username, ?over.retry_after, "expensive read refused");
            return Err(AdminError::TooMany(format!(
                "Too many table reads from this session; try again in {} s.",
                over.retry_after.as_secs().max(1)
            )));
        }
        Ok(who)
    }

    /// This operator with its helper calls on the lane reserved for changes: a preview and a
    /// confirmation plan from the live table there too, so a crowd of reads cannot hold them up.
    fn on_the_changes_lane(&self) -> Self {
        Self {
            helper: self.helper.in_lane(Lane::Changes),
            ..self.clone()
        }
    }

    async fn blocks_now(&self) -> Result<Vec<ActiveBlock>, AdminError> {
        match self
            .helper
            .call(Request::ListBlocks {})
            .await
            .map_err(from_helper)?
        {
            Response::Blocks { blocks } => Ok(blocks),
            other => Err(from_helper(unexpected(&other))),
        }
    }

    /// How many entries lie in the target's network now (at most the drill-down limit + "more").
    async fn entries_in(&self, target: &BlockTarget) -> Result<(usize, bool), AdminError> {
        let filter = EntryFilter {
            network: Some(target.network()),
            port: target.port().map(|p| p.port()),
            protocol: target.protocol(),
            tcp_state: None,
            limit: EntryFilter::MAX_LIMIT,
        };
        match self
            .helper
            .call(Request::Entries { filter })
            .await
            .map_err(from_helper)?
        {
            Response::Entries { entries, truncated } => Ok((entries.len(), truncated)),
            other => Err(from_helper(unexpected(&other))),
        }
    }

    async fn plan(&self, who: &Requester, operation: &Operation) -> Result<Plan, AdminError> {
        match operation {
            Operation::Block {
                target,
                duration_secs,
                reason,
            } => {
                let target = parse_target(target)?;
                let duration = BlockDuration::from_secs(*duration_secs)
                    .map_err(|e| invalid(format!("{e}.")))?;
                short_text(reason, "reason")?;
                let blocks = self.blocks_now().await?;
                let existing = blocks.iter().find(|b| b.target == target);
                let (entries, more) = self.entries_in(&target).await?;
                let until = self.clock.now().max(0) as u64 + duration.secs();
                let mut changes = vec![
                    format!(
                        "drop traffic {target} in table inet ctguard, before conntrack sees it"
                    ),
                    format!(
                        "for {}, until {}",
                        ctguard_app::dashboard::trend::duration(duration.secs()),
                        format::clock_utc(until * 1000)
                    ),
                    format!(
                        "delete its existing entries: {}{}",
                        format::thousands(entries as u64),
                        if more { " or more" } else { "" }
                    ),
                ];
                if let Some(block) = existing {
                    changes.insert(
                        0,
                        format!(
                            "already blocked until {}: the block is renewed",
                            format::clock_utc(block.expires_unix * 1000)
                        ),
                    );
                }
                let mut warnings = Vec::new();
                if target.network().contains(&who.client.addr) {
                    warnings.push(
                        "This target contains your own address: the helper will refuse it."
                            .to_owned(),
                    );
                }
                Ok(Plan {
                    title: format!("Block {target}"),
                    changes,
                    warnings,
                    fingerprint: format!("blocked:{}", existing.is_some()),
                })
            }
            Operation::Unblock { target } => {
                let blocks = self.blocks_now().await?;
                let block = blocks
                    .iter()
                    .find(|b| b.target == *target)
                    .ok_or_else(|| invalid(format!("{target} is not blocked (any more).")))?;
                Ok(Plan {
                    title: format!("Unblock {target}"),
                    changes: vec![
                        format!("traffic {target} is let through again"),
                        format!(
                            "the block by {} ({}) ends now instead of at {}",
                            block.actor,
                            block.reason,
                            format::clock_utc(block.expires_unix * 1000)
                        ),
                    ],
                    warnings: Vec::new(),
                    fingerprint: format!("block:{}", block.journal_seq),
                })
            }
            Operation::DeleteEntries { target, reason } => {
                let target = parse_target(target)?;
                short_text(reason, "reason")?;
                let (entries, more) = self.entries_in(&target).await?;
                Ok(Plan {
                    title: format!("Delete the entries of {target}"),
                    changes: vec![format!(
                        "delete {}{} conntrack entries, both directions; nothing is blocked",
                        format::thousands(entries as u64),
                        if more { " or more" } else { "" }
                    )],
                    warnings: vec![
                        "Without a block, the source can open new entries at once.".to_owned(),
                    ],
                    // Entry counts move all the time; the operation stays valid while they do.
                    fingerprint: "entries".to_owned(),
                })
            }
            Operation::StartTrace {
                filter,
                seconds,
                reason,
            } => {
                let filter = parse_filter(filter)?;
                let seconds = trace_length(*seconds)?;
                short_text(reason, "reason")?;
                let (reading, running) = self.helper.trace().await.map_err(from_helper)?;
                let until = self.clock.now().max(0) as u64 + u64::from(seconds);
                let mut warnings = Vec::new();
                if let Some(reading) = reading.as_deref().filter(|_| running) {
                    warnings.push(format!(
                        "A trace of {} is running until {}: the helper will refuse another.",
                        reading.info.filter,
                        format::clock_utc(reading.info.ends_at * 1000)
                    ));
                }
                Ok(Plan {
                    title: format!("Trace new flows {filter}"),
                    changes: vec![
                        format!(
                            "count the new flows {filter} by source, destination and destination \
                             port, in kernel counters"
                        ),
                        format!(
                            "for {}, until {}; the trace ends by itself then",
                            ctguard_app::dashboard::trend::duration(u64::from(seconds)),
                            format::clock_utc(until * 1000)
                        ),
                        "nothing is logged to syslog and no traffic is dropped; the helper \
                         journals the start and the end"
                            .to_owned(),
                    ],
                    warnings,
                    fingerprint: format!("tracing:{running}"),
                })
            }
            Operation::StopTrace {} => {
                let (reading, running) = self.helper.trace().await.map_err(from_helper)?;
                let reading = reading
                    .filter(|_| running)
                    .ok_or_else(|| invalid("No trace is running (it may have just ended)."))?;
                Ok(Plan {
                    title: format!("Stop the trace of {}", reading.info.filter),
                    changes: vec![format!(
                        "the trace ends now instead of at {}; its counts so far stay shown",
                        format::clock_utc(reading.info.ends_at * 1000)
                    )],
                    warnings: Vec::new(),
                    fingerprint: format!("trace:{}", reading.info.started_at),
                })
            }
            Operation::SetSysctl { .. } | Operation::RevertSysctl { .. } => {
                let write = self
                    .resolve_sysctl(operation)
                    .await?
                    .ok_or(AdminError::Internal)?;
                let revert_of = match operation {
                    Operation::RevertSysctl { audit_id } => Some(*audit_id),
                    _ => None,
                };
                self.plan_sysctl(write, revert_of).await
            }
        }
    }

    async fn execute(
        &self,
        who: &Requester,
        operation: &Operation,
    ) -> Result<Executed, AdminError> {
        let actor = short_text(&who.user.username, "user name")?;
        let requested_by = who.client.addr;
        if let Some(write) = self.resolve_sysctl(operation).await? {
            return self.execute_sysctl(write, (actor, requested_by)).await;
        }
        let request = match operation {
            Operation::Block {
                target,
                duration_secs,
                reason,
            } => Request::Block(BlockRequest {
                target: parse_target(target)?,
                duration: BlockDuration::from_secs(*duration_secs)
                    .map_err(|e| invalid(format!("{e}.")))?,
                reason: short_text(reason, "reason")?,
                requested_by,
                actor,
            }),
            Operation::Unblock { target } => Request::Unblock(UnblockRequest {
                target: *target,
                reason: short_text("unblocked from the panel", "reason")?,
                requested_by,
                actor,
            }),
            Operation::DeleteEntries { target, reason } => {
                Request::DeleteEntries(DeleteEntriesRequest {
                    target: parse_target(target)?,
                    reason: short_text(reason, "reason")?,
                    requested_by,
                    actor,
                })
            }
            Operation::StartTrace {
                filter,
                seconds,
                reason,
            } => {
                let (trace, journal) = self
                    .helper
                    .start_trace(Request::StartTrace(StartTraceRequest {
                        filter: parse_filter(filter)?,
                        seconds: trace_length(*seconds)?,
                        reason: short_text(reason, "reason")?,
                        requested_by,
                        actor,
                    }))
                    .await
                    .map_err(from_helper_change)?;
                return Ok(Executed {
                    message: format!(
                        "Tracing new flows {} until {}; nothing is logged to syslog.",
                        trace.filter,
                        format::clock_utc(trace.ends_at * 1000)
                    ),
                    journal,
                    arguments: None,
                });
            }
            Operation::StopTrace {} => {
                let (trace, journal) = self
                    .helper
                    .stop_trace(Request::StopTrace(StopTraceRequest {
                        reason: short_text("stopped from the panel", "reason")?,
                        requested_by,
                        actor,
                    }))
                    .await
                    .map_err(from_helper_change)?;
                return Ok(Executed {
                    message: format!("Stopped the trace of {}.", trace.filter),
                    journal,
                    arguments: None,
                });
            }
            // Resolved above.
            Operation::SetSysctl { .. } | Operation::RevertSysctl { .. } => {
                return Err(AdminError::Internal);
            }
        };
        let (message, journal) = match self
            .helper
            .call(request)
            .await
            .map_err(from_helper_change)?
        {
            Response::Blocked {
                block,
                entries_deleted,
                journal,
            } => (
                format!(
                    "Blocked {} until {}; {} entries deleted.",
                    block.target,
                    format::clock_utc(block.expires_unix * 1000),
                    format::thousands(entries_deleted)
                ),
                journal,
            ),
            Response::Unblocked { target, journal } => (format!("Unblocked {target}."), journal),
            Response::EntriesDeleted {
                target,
                deleted,
                journal,
            } => (
                format!(
                    "Deleted {} entries of {target}.",
                    format::thousands(deleted)
                ),
                journal,
            ),
            other => return Err(from_helper(unexpected(&other))),
        };
        Ok(Executed {
            message,
            journal,
            arguments: None,
        })
    }

    /// The route table lets operators reach every operation; tuning needs more, and a refusal is
    /// audited like any other.
    async fn check_role(&self, who: &Requester, operation: &Operation) -> Result<(), AdminError> {
        let needed = operation.permission();
        if who.user.may(needed) {
            return Ok(());
        }
        tracing::warn!(user = ?who.user.username, role = %who.user.role, ?needed, "operation refused");
        let error = invalid("Your role does not allow this.");
        self.audit(
            who,
            operation,
            Outcome::Refused,
            &format!("the {} role may not {}", who.user.role, operation.action()),
            None,
        )
        .await?;
        Err(error)
    }

    /// The audit record of a change about to be asked of the helper, as pending: refused
    /// (nothing asked) when it cannot be written.
    async fn begin_audit(
        &self,
        who: &Requester,
        operation: &Operation,
        summary: &str,
    ) -> Result<Attempt, AdminError> {
        let target = audit_target(operation);
        let event = AuditEvent::by(&who.user, &who.client, operation.action(), Outcome::Pending)
            .target(&target)
            .detail("asked of the helper")
            .preview(summary);
        self.audit
            .begin(self.clock.now(), event)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot write the audit record; the change is not made");
                AdminError::Unaudited(
                    "Nothing was changed: the audit log cannot be written. The server log has the details."
                        .to_owned(),
                )
            })
    }

    async fn audit(
        &self,
        who: &Requester,
        operation: &Operation,
        outcome: Outcome,
        detail: &str,
        preview: Option<&str>,
    ) -> Result<(), AdminError> {
        let target = audit_target(operation);
        let mut event = AuditEvent::by(&who.user, &who.client, operation.action(), outcome)
            .target(&target)
            .detail(detail);
        event.preview = preview;
        self.audit
            .record(self.clock.now(), event)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot write the audit record");
                AdminError::Internal
            })
    }
}

#[async_trait::async_trait]
impl TableOperations for TableOperator {
    async fn suspects(&self) -> Result<SuspectsView, AdminError> {
        self.spend_a_walk().await?;
        match self
            .helper
            .call(Request::Snapshot {})
            .await
            .map_err(from_helper)?
        {
            Response::Snapshot { snapshot } => {
                let mut suspects = suspicion::assess(&snapshot);
                // Who of them also creates entries fast (the helper's counters, right after the
                // walk); without them the walk's reasons stand alone.
                match crate::creators::ask(&self.helper, CREATORS_LISTED).await {
                    Ok(CreatorsView::Available { creators }) => {
                        suspicion::note_creators(&mut suspects, &creators);
                    }
                    Ok(CreatorsView::Unavailable { .. }) => {}
                    Err(error) => tracing::debug!(%error, "creators unavailable for the suspects"),
                }
                Ok(SuspectsView {
                    taken_unix_ms: snapshot.taken_unix_ms,
                    walk_ms: snapshot.walk_ms,
                    total: snapshot.total,
                    suspects,
                    victims: suspicion::assess_victims(&snapshot),
                    dports: snapshot.dports,
                    protocols: snapshot.protocols,
                })
            }
            other => Err(from_helper(unexpected(&other))),
        }
    }

    async fn creators(&self) -> Result<CreatorsView, AdminError> {
        crate::creators::ask(&self.helper, CREATORS_LISTED)
            .await
            .map_err(from_helper)
    }

    async fn trace(&self) -> Result<TraceView, AdminError> {
        match self.helper.trace().await {
            Ok((reading, running)) => Ok(TraceView::Reading {
                reading,
                running,
                now: self.clock.now().max(0) as u64,
            }),
            Err(HelperClientError::Failed(
                HelperError::Unsupported { .. } | HelperError::MalformedRequest { .. },
            )) => Ok(TraceView::Unsupported),
            Err(error) => Err(from_helper(error)),
        }
    }

    async fn entries_of(&self, network: String) -> Result<EntriesView, AdminError> {
        self.spend_a_walk().await?;
        let network = ctguard_protocol::target::parse_network(network.trim())
            .map_err(|e| invalid(format!("{e}.")))?;
        let filter = EntryFilter {
            network: Some(network),
            port: None,
            protocol: None,
            tcp_state: None,
            limit: DRILL_DOWN_LIMIT,
        };
        match self
            .helper
            .call(Request::Entries { filter })
            .await
            .map_err(from_helper)?
        {
            Response::Entries { entries, truncated } => Ok(EntriesView { entries, truncated }),
            other => Err(from_helper(unexpected(&other))),
        }
    }

    async fn blocks(&self) -> Result<Vec<ActiveBlock>, AdminError> {
        self.blocks_now().await
    }

    async fn preview(&self, operation: Operation) -> Result<Preview, AdminError> {
        let this = &self.on_the_changes_lane();
        // A preview plans from a walk of the table too.
        let who = this.spend_a_walk().await?;
        this.check_role(&who, &operation).await?;
        let plan = match this.plan(&who, &operation).await {
            Ok(plan) => plan,
            Err(error) => {
                this.audit(
                    &who,
                    &operation,
                    outcome_of(&error),
                    &error.to_string(),
                    None,
                )
                .await?;
                return Err(error);
            }
        };
        Ok(this.confirmations.preview(
            &who.login.0,
            Change {
                action: operation.action(),
                args: &operation,
            },
            plan,
        ))
    }

    async fn apply(&self, token: String, operation: Operation) -> Result<String, AdminError> {
        let this = &self.on_the_changes_lane();
        let who = requester().await?;
        this.check_role(&who, &operation).await?;
        // From the re-plan to the audit of the outcome: a second confirmation of a preview of the
        // same state waits, then finds the state changed.
        let _held = this.confirmations.hold(&target_of(&operation)).await;
        let change = Change {
            action: operation.action(),
            args: &operation,
        };
        let plan = match this.plan(&who, &operation).await {
            Ok(plan) => plan,
            Err(error) => {
                let _ = this.confirmations.redeem(&token, &who.login.0, change, "");
                this.audit(
                    &who,
                    &operation,
                    outcome_of(&error),
                    &error.to_string(),
                    None,
                )
                .await?;
                return Err(error);
            }
        };
        let summary = plan.summary();
        if let Err(refusal) =
            this.confirmations
                .redeem(&token, &who.login.0, change, &plan.fingerprint)
        {
            tracing::warn!(user = ?who.user.username, %refusal, "confirmation refused");
            this.audit(
                &who,
                &operation,
                Outcome::Refused,
                &refusal.to_string(),
                Some(&summary),
            )
            .await?;
            return Err(invalid(refusal.to_string()));
        }
        // The attempt is on record before the helper is asked; without it nothing is asked.
        let attempt = this.begin_audit(&who, &operation, &summary).await?;
        let result = this.execute(&who, &operation).await;
        let finished = match &result {
            Ok(done) => Finished {
                outcome: Outcome::Success,
                detail: &done.message,
                journal: Some(&done.journal),
                arguments: done.arguments.as_deref(),
            },
            Err(error) => Finished {
                outcome: outcome_of(error),
                detail: &error.to_string(),
                journal: None,
                arguments: None,
            },
        };
        if let Err(error) = this.audit.finish(attempt, finished).await {
            // The change happened (or not) all the same; its record stays "pending", which the
            // Audit page shows as an attempt whose outcome was not recorded.
            tracing::error!(%error, action = operation.action(), "cannot record the outcome of a change");
        }
        result.map(|done| done.message)
    }
}
