//! The audit store: every attempt to sign in or change something, with who, from where, what, and
//! how it ended. Written before the answer goes out; never holds a secret.

use ctguard_app::{audit::ValidFilter, auth::CurrentUser};
use ctguard_protocol::{JournalRef, RecordHash};
use sqlx::SqlitePool;

use crate::client::ClientInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Refused,
    Failed,
    /// Asked of the helper, which did not answer (a timeout, a connection that broke after the
    /// request went out): the change may or may not have been made. Never recorded as refused.
    Unknown,
    /// Written before a change is carried out and replaced by how it ended; one that stays
    /// pending means the server stopped (or could not write the outcome) in between.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Pending => "pending",
        }
    }
}

/// A change's audit record, written as pending before the change is made (`AuditStore::begin`):
/// what `finish` completes with the outcome.
#[derive(Debug)]
#[must_use = "an attempt is finished with its outcome"]
pub struct Attempt {
    id: i64,
}

/// How an attempt ended, for `AuditStore::finish`.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub outcome: Outcome,
    pub detail: &'a str,
    pub journal: Option<&'a JournalRef>,
    pub arguments: Option<&'a str>,
}

/// One audit record to write.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The signed-in user, or for a login attempt the name that was tried (with no role).
    pub actor: Option<&'a str>,
    pub role: Option<&'a str>,
    pub client: &'a ClientInfo,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: Outcome,
    pub detail: Option<&'a str>,
    /// What the confirmed (or refused) change's preview showed.
    pub preview: Option<&'a str>,
    /// The helper's journal record of the change (its intent: sequence number and hash), when
    /// the helper carried it out.
    pub journal_id: Option<&'a JournalRef>,
    /// The change's arguments as JSON, where something (a revert) needs them back.
    pub arguments: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    pub fn by(
        user: &'a CurrentUser,
        client: &'a ClientInfo,
        action: &'a str,
        outcome: Outcome,
    ) -> Self {
        Self {
            actor: Some(&user.username),
            role: Some(user.role.as_str()),
            client,
            action,
            target: None,
            outcome,
            detail: None,
            preview: None,
            journal_id: None,
            arguments: None,
        }
    }

    pub fn target(mut self, target: &'a str) -> Self {
        self.target = Some(target);
        self
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn preview(mut self, preview: &'a str) -> Self {
        self.preview = Some(preview);
        self
    }
}

/// A stored record, as the audit page and tests read it back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub client_addr: String,
    pub user_agent: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub preview: Option<String>,
    pub journal_id: Option<String>,
    pub journal_hash: Option<String>,
    pub arguments: Option<String>,
}

const COLUMNS: &str = "id, at, actor, role, client_addr, user_agent, action, target, outcome, \
                       detail, preview, journal_id, journal_hash, arguments";

#[derive(Debug, Clone)]
pub struct AuditStore {
    pool: SqlitePool,
}

impl AuditStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn record(&self, at: i64, event: AuditEvent<'_>) -> Result<(), sqlx::Error> {
        self.insert(at, event).await.map(drop)
    }

    async fn insert(&self, at: i64, event: AuditEvent<'_>) -> Result<i64, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO audit (at, actor, role, client_addr, user_agent, action, target, outcome, detail, preview, journal_id, journal_hash, arguments)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(at)
        .bind(event.actor)
        .bind(event.role)
        .bind(event.client.addr.to_string())
        .bind(&event.client.user_agent)
        .bind(event.action)
        .bind(event.target)
        .bind(event.outcome.as_str())
        .bind(event.detail)
        .bind(event.preview)
        .bind(event.journal_id.map(|r| r.seq.to_string()))
        .bind(event.journal_id.map(|r| r.hash.to_string()))
        .bind(event.arguments)
        .execute(&self.pool)
        .await?;
        tracing::info!(
            actor = event.actor,
            action = event.action,
            target = event.target,
            outcome = event.outcome.as_str(),
            client = %event.client.addr,
            "audit"
        );
        Ok(inserted.last_insert_rowid())
    }

    /// The newest records first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<AuditRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit ORDER BY id DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// One record by its id.
    pub async fn get(&self, id: i64) -> Result<Option<AuditRecord>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The newest successful records of `actions` that carry arguments, newest first, at most
    /// `limit`: for the Tuning page, the last value the panel set for each key.
    pub async fn successes_with_arguments(
        &self,
        actions: &[&str],
        limit: i64,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let placeholders = vec!["?"; actions.len()].join(", ");
        let sql = format!(
            "SELECT {COLUMNS} FROM audit
             WHERE outcome = 'success' AND arguments IS NOT NULL AND action IN ({placeholders})
             ORDER BY id DESC LIMIT ?"
        );
        let mut query = sqlx::query_as(&sql);
        for action in actions {
            query = query.bind(*action);
        }
        query.bind(limit).fetch_all(&self.pool).await
    }

    /// The records `filter` matches, newest first, skipping `offset` and returning at most `limit`.
    pub async fn search(
        &self,
        filter: &ValidFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS}
             FROM audit
             WHERE (? IS NULL OR actor = ?)
               AND (? IS NULL OR action = ?)
               AND (? IS NULL OR outcome = ?)
               AND (? IS NULL OR at >= ?)
               AND (? IS NULL OR at <= ?)
             ORDER BY at DESC, id DESC
             LIMIT ? OFFSET ?"
        ))
        .bind(&filter.actor)
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(&filter.action)
        .bind(&filter.outcome)
        .bind(&filter.outcome)
        .bind(filter.from)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.to)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
    }

    /// Writes the record of a change about to be made, as pending: the change goes ahead only
    /// once this returned (fail closed: a change that cannot be audited is not made).
    pub async fn begin(&self, at: i64, event: AuditEvent<'_>) -> Result<Attempt, sqlx::Error> {
        let id = self
            .insert(
                at,
                AuditEvent {
                    outcome: Outcome::Pending,
                    ..event
                },
            )
            .await?;
        Ok(Attempt { id })
    }

    /// Completes an attempt with how it ended (its time stays the attempt's).
    pub async fn finish(&self, attempt: Attempt, how: Finished<'_>) -> Result<(), sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE audit SET outcome = ?, detail = ?, journal_id = ?, journal_hash = ?, arguments = ?
             WHERE id = ? AND outcome = 'pending'",
        )
        .bind(how.outcome.as_str())
        .bind(how.detail)
        .bind(how.journal.map(|r| r.seq.to_string()))
        .bind(how.journal.map(|r| r.hash.to_string()))
        .bind(how.arguments)
        .bind(attempt.id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(sqlx::Error::RowNotFound);
        }
        tracing::info!(
            id = attempt.id,
            outcome = how.outcome.as_str(),
            "audit outcome"
        );
        Ok(())
    }

    /// The newest `limit` journal records the audit log names with their hashes, newest first:
    /// what the journal check asks the helper to bear out. A stored pair that does not parse
    /// (edited by hand) is skipped with an error in the log rather than failing the check.
    pub async fn journal_refs(&self, limit: i64) -> Result<Vec<JournalRef>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT journal_id, journal_hash FROM audit
             WHERE journal_id IS NOT NULL AND journal_hash IS NOT NULL
             ORDER BY CAST(journal_id AS INTEGER) DESC
             LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, hash)| {
                let parsed = seq
                    .parse()
                    .ok()
                    .zip(RecordHash::try_from(hash).ok())
                    .map(|(seq, hash)| JournalRef { seq, hash });
                if parsed.is_none() {
                    tracing::error!(seq, "an audit record names a malformed journal record");
                }
                parsed
            })
            .collect())
    }

    /// The highest helper journal record any audit record names: the journal must hold at least
    /// that many records, or its end was cut off.
    pub async fn highest_journal_seq(&self) -> Result<Option<u64>, sqlx::Error> {
        let highest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(CAST(journal_id AS INTEGER)) FROM audit WHERE journal_id IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(highest.and_then(|seq| u64::try_from(seq).ok()))
    }
}
