//! The audit store: every attempt to sign in or change something, with who, from where, what, and
//! how it ended. Written before the answer goes out; never holds a secret. Cheap repeated refusals
//! are folded per key and minute (`aggregate`), old records archived and removed (`retention`).

pub mod aggregate;
pub mod retention;

use ctguard_app::{
    admin::audit::{AuditCursor, ValidFilter},
    auth::CurrentUser,
};
use ctguard_protocol::{JournalRef, RecordHash};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::client_info::ClientInfo;

/// Which page of a search: by offset (old bookmarks), or older / newer than a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAt {
    Offset(i64),
    Before(AuditCursor),
    After(AuditCursor),
}

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
    /// How many events the record stands for (1 unless folded, see [`aggregate`]).
    pub count: i64,
    /// The last folded event's time; `at` is the first. `None` for a record never folded.
    pub last_at: Option<i64>,
}

const COLUMNS: &str = "id, at, actor, role, client_addr, user_agent, action, target, outcome, \
                       detail, preview, journal_id, journal_hash, arguments, count, last_at";

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

    /// The records `filter` matches, newest first, at most `limit`, from where `page` says.
    ///
    /// Only the conditions the filter sets are written into the query (a `? IS NULL OR actor = ?`
    /// form would keep SQLite from using any index), so each filter meets its index
    /// (`20261202000021_audit_indexes.sql`) and is read in order; a cursor is a range on that
    /// index (`at <= ?` bounds it, the `OR` only settles records of the same second).
    pub async fn search(
        &self,
        filter: &ValidFilter,
        limit: i64,
        page: PageAt,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let mut query = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM audit WHERE 1"));
        push_filter(&mut query, filter);
        let newest_first = match page {
            PageAt::Offset(_) => true,
            PageAt::Before(cursor) => {
                query
                    .push(" AND at <= ")
                    .push_bind(cursor.at)
                    .push(" AND (at < ")
                    .push_bind(cursor.at)
                    .push(" OR id < ")
                    .push_bind(cursor.id)
                    .push(")");
                true
            }
            PageAt::After(cursor) => {
                query
                    .push(" AND at >= ")
                    .push_bind(cursor.at)
                    .push(" AND (at > ")
                    .push_bind(cursor.at)
                    .push(" OR id > ")
                    .push_bind(cursor.id)
                    .push(")");
                false
            }
        };
        query.push(if newest_first {
            " ORDER BY at DESC, id DESC LIMIT "
        } else {
            " ORDER BY at ASC, id ASC LIMIT "
        });
        query.push_bind(limit);
        if let PageAt::Offset(offset) = page {
            query.push(" OFFSET ").push_bind(offset);
        }
        let mut records: Vec<AuditRecord> = query.build_query_as().fetch_all(&self.pool).await?;
        if !newest_first {
            records.reverse();
        }
        Ok(records)
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

/// The filter's conditions, only those it sets (see [`AuditStore::search`]).
fn push_filter(query: &mut QueryBuilder<'_, Sqlite>, filter: &ValidFilter) {
    for (column, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("outcome", &filter.outcome),
    ] {
        if let Some(value) = value {
            query
                .push(format!(" AND {column} = "))
                .push_bind(value.clone());
        }
    }
    if let Some(from) = filter.from {
        query.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND at <= ").push_bind(to);
    }
}
