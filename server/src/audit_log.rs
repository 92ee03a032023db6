//! The Audit page's server side: pages of the audit store for admins, behind
//! [`ctguard_app::admin::audit::ssr::AuditLog`] (the UI's server function checks the role, then calls it).

use ctguard_app::admin::audit::{
    AuditEntry, AuditPage, AuditQuery, JournalReport,
    ssr::{AuditError, AuditLog},
};
use ctguard_protocol::{JournalRef, Request, Response};

use crate::{
    audit::{AuditRecord, AuditStore, PageAt},
    helper_client::HelperClient,
};

#[derive(Debug, Clone)]
pub struct AuditReader {
    pub audit: AuditStore,
    /// For the helper's journal check (a walk of the whole file: a client with a long deadline).
    pub helper: HelperClient,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        let revertible = record.outcome == "success"
            && crate::table_operations::tuning::SYSCTL_ACTIONS.contains(&record.action.as_str())
            && record.arguments.is_some();
        Self {
            id: record.id,
            at: record.at,
            actor: record.actor,
            role: record.role,
            client_addr: record.client_addr,
            action: record.action,
            target: record.target,
            outcome: record.outcome,
            detail: record.detail,
            revertible,
            preview: record.preview,
            journal_id: record.journal_id,
            count: record.count,
            last_at: record.last_at,
        }
    }
}

#[async_trait::async_trait]
impl AuditLog for AuditReader {
    async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError> {
        let filter = query.filter.validate().map_err(AuditError::Invalid)?;
        let page_size = query.effective_page_size();
        let size = page_size as usize;
        let at = match (query.before, query.after) {
            (Some(cursor), _) => PageAt::Before(cursor),
            (None, Some(cursor)) => PageAt::After(cursor),
            (None, None) => PageAt::Offset(i64::from(query.page) * i64::from(page_size)),
        };
        // One more than a page tells whether another page lies beyond it.
        let mut records = self
            .audit
            .search(&filter, i64::from(page_size) + 1, at)
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading the audit log failed");
                AuditError::Internal
            })?;
        let beyond = records.len() > size;
        let (has_more, has_newer) = match at {
            PageAt::Offset(offset) => {
                records.truncate(size);
                (beyond, offset > 0)
            }
            PageAt::Before(_) => {
                records.truncate(size);
                (beyond, true)
            }
            PageAt::After(_) => {
                // Newest first: the record beyond the page is its first.
                if beyond {
                    records.remove(0);
                }
                (true, beyond)
            }
        };
        Ok(AuditPage {
            entries: records.into_iter().map(AuditEntry::from).collect(),
            page: query.page,
            page_size,
            has_more,
            has_newer,
        })
    }

    async fn journal_check(&self) -> Result<JournalReport, AuditError> {
        // Read before the check: a change acknowledged in between raises the journal's count,
        // never the other way round, so no false alarm.
        let store_error = |error: sqlx::Error| {
            tracing::error!(%error, "reading the audit log failed");
            AuditError::Internal
        };
        let panel_last_seq = self
            .audit
            .highest_journal_seq()
            .await
            .map_err(store_error)?;
        // The newest pairs: a journal cut short and grown back differs at its end first.
        let expect = self
            .audit
            .journal_refs(JournalRef::MAX_PER_CHECK as i64)
            .await
            .map_err(store_error)?;
        match self.helper.call(Request::VerifyJournal { expect }).await {
            Ok(Response::JournalCheck { check }) => {
                let report = JournalReport {
                    check,
                    panel_last_seq,
                };
                if report.truncated() {
                    tracing::error!(
                        records = report.check.records,
                        ?panel_last_seq,
                        "the helper's journal lacks records the audit log names"
                    );
                }
                if let Some(mismatch) = report.rewritten() {
                    tracing::error!(
                        seq = mismatch.expected.seq,
                        expected = %mismatch.expected.hash,
                        found = ?mismatch.found,
                        differing = report.check.mismatches.len(),
                        "the helper's journal no longer holds records the audit log names"
                    );
                }
                Ok(report)
            }
            Ok(other) => {
                tracing::error!(?other, "unexpected answer to verify_journal");
                Err(AuditError::Internal)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot check the helper's journal");
                Err(AuditError::Invalid(
                    "the privileged helper is not reachable".to_owned(),
                ))
            }
        }
    }
}
