//! How long the audit log keeps its records (`--audit-retention-days`), and the sweep that removes
//! older ones: archived first, deleted after.
//!
//! Each batch of expired records is appended to the day's archive file in the server's state
//! directory (`audit-archive/expired-YYYY-MM-DD.csv`, one file per day of sweeping) and fsync'd
//! before a single record of it is deleted. A crash in between leaves the records in the store,
//! and the next sweep archives them again: a record can be archived twice (the `id` column tells
//! the copies apart), never lost. Every sweep that removed something is itself audited.

use std::{
    io::{Read, Seek, SeekFrom, Write},
    net::{IpAddr, Ipv4Addr},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use ctguard_app::utc;
use tokio::task::JoinHandle;

use super::{AuditEvent, AuditRecord, AuditStore, COLUMNS, Finished, Outcome};
use crate::{audit_export::neutralise, client_info::ClientInfo, clock::SharedClock};

/// The default: a little over a year, so last year's incident is still on the page.
pub const DEFAULT_DAYS: u32 = 400;
/// How often the sweep runs (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// The archive's directory under the state directory.
pub const ARCHIVE_DIR: &str = "audit-archive";
/// Records archived and deleted per step: bounds the memory and how long the store's writer is
/// held (other audit records wait for it).
const BATCH: i64 = 5_000;

const ARCHIVE_HEADER: [&str; 17] = [
    "id",
    "time_utc",
    "at",
    "last_at",
    "count",
    "user",
    "role",
    "client_addr",
    "user_agent",
    "action",
    "target",
    "outcome",
    "detail",
    "preview",
    "helper_journal",
    "helper_journal_hash",
    "arguments",
];

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("the audit store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("the audit archive {path}: {source}")]
    Archive {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the audit archive: {0}")]
    Csv(#[from] csv::Error),
    #[error("the archive writer stopped: {0}")]
    Writer(#[from] tokio::task::JoinError),
    #[error("{0} archived records could not be deleted")]
    NotDeleted(usize),
}

/// One archived batch, not yet deleted from the store.
#[derive(Debug)]
pub struct Archived {
    pub ids: Vec<i64>,
    pub file: PathBuf,
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub records: u64,
    /// The archive files written, by name.
    pub files: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Retention {
    pub audit: AuditStore,
    /// Where the archive files go (`ARCHIVE_DIR` in the state directory).
    pub dir: PathBuf,
    /// 0: keep everything, sweep nothing.
    pub days: u32,
}

impl Retention {
    pub fn in_state_dir(audit: AuditStore, state_dir: &Path, days: u32) -> Self {
        Self {
            audit,
            dir: state_dir.join(ARCHIVE_DIR),
            days,
        }
    }

    /// Records from before this time are expired; `None`: nothing ever is.
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        (self.days > 0).then(|| now - i64::from(self.days) * 86_400)
    }

    /// Archives the oldest batch of expired records, fsync'd, and says which they are (nothing
    /// is deleted yet). `None` when nothing is expired.
    pub async fn archive_expired(&self, now: i64) -> Result<Option<Archived>, RetentionError> {
        let Some(cutoff) = self.cutoff(now) else {
            return Ok(None);
        };
        let records: Vec<AuditRecord> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit WHERE at < ? ORDER BY at, id LIMIT ?"
        ))
        .bind(cutoff)
        .bind(BATCH)
        .fetch_all(&self.audit.pool)
        .await?;
        if records.is_empty() {
            return Ok(None);
        }
        let ids = records.iter().map(|record| record.id).collect();
        let file = self
            .dir
            .join(format!("expired-{}.csv", &utc::datetime(now)[..10]));
        let dir = self.dir.clone();
        let path = file.clone();
        tokio::task::spawn_blocking(move || append(&dir, &path, &records)).await??;
        Ok(Some(Archived { ids, file }))
    }

    /// Deletes an archived batch from the store.
    pub async fn delete_archived(&self, archived: &Archived) -> Result<u64, RetentionError> {
        let ids = serde_json::to_string(&archived.ids).unwrap_or_else(|_| "[]".to_owned());
        let deleted = sqlx::query("DELETE FROM audit WHERE id IN (SELECT value FROM json_each(?))")
            .bind(ids)
            .execute(&self.audit.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// Archives and deletes every expired record, batch by batch, audited before and after.
    ///
    /// The sweep's record is written (pending) before the first delete: audit before action,
    /// and the store is never swept empty, which matters because SQLite gives a new record the
    /// highest id plus one: an empty store would hand out ids again, and an archive's ids would
    /// no longer tell copies of one record from different records.
    pub async fn sweep(&self, now: i64) -> Result<Swept, RetentionError> {
        let mut swept = Swept::default();
        let Some(cutoff) = self.cutoff(now) else {
            return Ok(swept);
        };
        let expired: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit WHERE at < ?)")
            .bind(cutoff)
            .fetch_one(&self.audit.pool)
            .await?;
        if !expired {
            return Ok(swept);
        }
        let before = utc::datetime(cutoff);
        let client = sweeper();
        let intent = format!(
            "records from before {before} UTC to be archived and deleted (retention {} days)",
            self.days
        );
        let attempt = self
            .audit
            .begin(
                now,
                AuditEvent {
                    actor: None,
                    role: None,
                    client: &client,
                    action: "audit.retention",
                    target: None,
                    outcome: Outcome::Pending,
                    detail: Some(&intent),
                    preview: None,
                    journal_id: None,
                    arguments: None,
                },
            )
            .await?;
        let outcome = loop {
            let archived = match self.archive_expired(now).await {
                Ok(Some(archived)) => archived,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            let name = archived
                .file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !swept.files.contains(&name) {
                swept.files.push(name);
            }
            match self.delete_archived(&archived).await {
                // Records already gone (another sweep, by hand) are fine; none at all would
                // archive the same batch for ever.
                Ok(0) => break Err(RetentionError::NotDeleted(archived.ids.len())),
                Ok(deleted) => swept.records += deleted,
                Err(error) => break Err(error),
            }
        };
        let files = swept
            .files
            .iter()
            .map(|name| format!("{ARCHIVE_DIR}/{name}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut detail = format!(
            "{} records from before {before} UTC archived to {} and deleted (retention {} days)",
            swept.records,
            if files.is_empty() { "nothing" } else { &files },
            self.days
        );
        if outcome.is_err() {
            detail.push_str("; then the sweep failed (the server log has the details)");
        }
        if !files.is_empty() {
            // The files it wrote, as the record's target (not known when it was begun).
            sqlx::query("UPDATE audit SET target = ? WHERE id = ?")
                .bind(&files)
                .bind(attempt.id)
                .execute(&self.audit.pool)
                .await?;
        }
        let finished = Finished {
            outcome: if outcome.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failed
            },
            detail: &detail,
            journal: None,
            arguments: None,
        };
        self.audit.finish(attempt, finished).await?;
        outcome.map(|()| swept)
    }

    /// Sweeps at start and then every [`SWEEP_EVERY`]; nothing when records are kept for ever.
    pub fn spawn(self, clock: SharedClock) -> Option<JoinHandle<()>> {
        if self.days == 0 {
            tracing::info!("audit records are kept for ever (--audit-retention-days 0)");
            return None;
        }
        Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match self.sweep(clock.now()).await {
                    Ok(swept) if swept.records > 0 => tracing::info!(
                        records = swept.records,
                        files = ?swept.files,
                        "expired audit records archived and deleted"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "the audit retention sweep failed"),
                }
            }
        }))
    }
}

/// The server itself, not a browser, sweeps.
fn sweeper() -> ClientInfo {
    ClientInfo {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        user_agent: "ctguard-server retention sweep".to_owned(),
    }
}

/// Appends `records` to the archive at `path` (created with its header, readable by the server's
/// user alone) and waits until they are on disk.
fn append(dir: &Path, path: &Path, records: &[AuditRecord]) -> Result<(), RetentionError> {
    let io = |source| RetentionError::Archive {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    if length > 0 {
        // A sweep that crashed mid-write left a torn last line: end it, so the rows that follow
        // start on a line of their own.
        let mut last = [0_u8];
        file.seek(SeekFrom::End(-1)).map_err(io)?;
        file.read_exact(&mut last).map_err(io)?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(io)?;
        }
    }
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(&file);
    if length == 0 {
        writer.write_record(ARCHIVE_HEADER)?;
    }
    for record in records {
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        let row = [
            record.id.to_string(),
            utc::datetime(record.at),
            record.at.to_string(),
            record.last_at.map(|at| at.to_string()).unwrap_or_default(),
            record.count.to_string(),
            optional(&record.actor),
            optional(&record.role),
            record.client_addr.clone(),
            record.user_agent.clone(),
            record.action.clone(),
            optional(&record.target),
            record.outcome.clone(),
            optional(&record.detail),
            optional(&record.preview),
            optional(&record.journal_id),
            optional(&record.journal_hash),
            optional(&record.arguments),
        ];
        writer.write_record(row.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    writer.flush().map_err(io)?;
    drop(writer);
    file.sync_all().map_err(io)?;
    if length == 0 {
        // A new file's name is on disk only once its directory is.
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
    }
    Ok(())
}
