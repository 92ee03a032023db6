//! The audit log for admins: the filter (as the page's form and the CSV link's query string carry
//! it), the rows and pages the Audit page shows, and the server function behind it. The server
//! implements [`ssr::AuditLog`]; the function checks the role again and delegates.

pub mod page;

use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};

/// The CSV export (an axum handler on the server, not a server function: it is a download).
pub const AUDIT_CSV_PATH: &str = "/audit.csv";
/// Rows per page unless asked otherwise, and the most a page may hold.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;
/// How an audit record can end: `unknown` when the helper did not answer a change (it may have
/// been made), `pending` while a change is under way (or when the server stopped in between).
pub const OUTCOMES: [&str; 5] = ["success", "refused", "failed", "unknown", "pending"];

/// Which records to show, as typed: empty fields match everything. Times are UTC, as Unix seconds,
/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`; `to` is inclusive of the whole day or minute it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub from: String,
    pub to: String,
}

/// A filter whose fields have been checked: `None` matches everything. `from` is the first second
/// of the range, `to` its last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

fn given(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

impl AuditFilter {
    /// Checks the fields; the message names the one that is wrong.
    pub fn validate(&self) -> Result<ValidFilter, String> {
        let time = |name: &str, text: &str, read: fn(&str) -> Option<i64>| match given(text) {
            None => Ok(None),
            Some(text) => read(&text).map(Some).ok_or_else(|| {
                format!("{name}: not a time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)")
            }),
        };
        let outcome = given(&self.outcome);
        if let Some(outcome) = &outcome
            && !OUTCOMES.contains(&outcome.as_str())
        {
            return Err(format!("Outcome: one of {}", OUTCOMES.join(", ")));
        }
        let filter = ValidFilter {
            actor: given(&self.actor).map(|a| a.to_ascii_lowercase()),
            action: given(&self.action),
            outcome,
            from: time("From", &self.from, crate::utc::parse)?,
            // `to` is inclusive of all it names: up to 2025-11-25 means to the end of that day.
            to: time("To", &self.to, crate::utc::parse_end)?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err("From is after To.".into());
        }
        Ok(filter)
    }

    /// The query string of the CSV link (only the fields that are set), percent-encoded.
    pub fn query_string(&self) -> String {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }

    /// Where the export link points for this filter.
    pub fn csv_href(&self) -> String {
        match self.query_string() {
            query if query.is_empty() => AUDIT_CSV_PATH.to_owned(),
            query => format!("{AUDIT_CSV_PATH}?{query}"),
        }
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Where a page starts: a record's time and id (the order the log is shown in). Pages link by
/// cursor, not by offset, so a deep page costs what the first does (an offset is read and thrown
/// away row by row). Its text form in the address is `AT.ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCursor {
    pub at: i64,
    pub id: i64,
}

impl AuditCursor {
    pub fn of(entry: &AuditEntry) -> Self {
        Self {
            at: entry.at,
            id: entry.id,
        }
    }

    /// `AT.ID`, as [`Self::fmt`] writes it; anything else is no cursor.
    pub fn parse(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        Some(Self {
            at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at, self.id)
    }
}

/// One page of the log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    pub filter: AuditFilter,
    /// Zero-based; without a cursor, the page is found by offset (a bookmark of an old link).
    pub page: u32,
    /// Clamped to 1..=[`MAX_PAGE_SIZE`]; 0 means [`DEFAULT_PAGE_SIZE`].
    pub page_size: u32,
    /// The records older than this one (the "Older" link).
    pub before: Option<AuditCursor>,
    /// The records newer than this one (the "Newer" link); `before` wins when both are given.
    pub after: Option<AuditCursor>,
}

impl AuditQuery {
    pub fn effective_page_size(&self) -> u32 {
        match self.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        }
    }
}

/// One audit record as the page shows it (the user agent stays in the database and the CSV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub client_addr: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub preview: Option<String>,
    /// The helper's journal record of the change (`ctguard-helper journal` shows it).
    pub journal_id: Option<String>,
    /// A successful sysctl change the Revert button can undo.
    pub revertible: bool,
    /// How many events the record stands for: repeated refusals (throttled sign-ins, forbidden
    /// requests) are folded into one record per key and minute; every other record is 1.
    pub count: i64,
    /// The last of those events (Unix seconds); `at` is the first.
    pub last_at: Option<i64>,
}

impl AuditEntry {
    /// "×312" for a record that stands for more than one event, else nothing.
    pub fn times(&self) -> Option<String> {
        (self.count > 1).then(|| format!("×{}", crate::format::thousands(self.count as u64)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub page: u32,
    pub page_size: u32,
    /// Whether an older page exists.
    pub has_more: bool,
    /// Whether a newer page exists.
    pub has_newer: bool,
}

/// The helper's journal as the Audit page reports it: the helper's own check of the chain (with
/// the newest records the panel's audit log names, by sequence number and hash, borne out or
/// not), and the highest journal record the audit log names. A chain that verifies can still
/// have lost its end, or have been cut short and grown back (root can do both and the rest still
/// chains), but not without losing a record the panel was told about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalReport {
    pub check: ctguard_protocol::JournalCheck,
    pub panel_last_seq: Option<u64>,
}

impl JournalReport {
    /// The journal holds fewer records than the panel has seen acknowledged (sequence numbers
    /// start at 0, so record `seq` needs `seq + 1` records).
    pub fn truncated(&self) -> bool {
        self.check.broken.is_none()
            && self
                .panel_last_seq
                .is_some_and(|seq| seq >= self.check.records)
    }

    /// A record the panel was told of is not in the journal as it was: the journal holds another
    /// record under that number (rewritten, or cut short and grown back) or none at all.
    pub fn rewritten(&self) -> Option<&ctguard_protocol::JournalMismatch> {
        self.check.mismatches.first()
    }
}

/// The helper's own journal, checked now: whether its hash chain holds and is complete.
#[server]
pub async fn journal_status() -> Result<JournalReport, ServerFnError> {
    ssr::audit_log()
        .await?
        .journal_check()
        .await
        .map_err(|e| e.into_server_error())
}

#[server(input = Json)]
pub async fn query_audit(query: AuditQuery) -> Result<AuditPage, ServerFnError> {
    ssr::audit_log()
        .await?
        .query(query)
        .await
        .map_err(|e| e.into_server_error())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's side: the trait it implements, handed to the UI as context.

    use std::sync::Arc;

    use leptos::prelude::*;

    use super::{AuditPage, AuditQuery};
    use crate::{auth::Permission, session::require};

    /// What went wrong, in words safe to show an admin.
    #[derive(Debug, Clone, thiserror::Error)]
    pub enum AuditError {
        #[error("{0}")]
        Invalid(String),
        #[error("Something went wrong; the server log has the details.")]
        Internal,
    }

    impl AuditError {
        /// The error a server function answers with: 400 for a refusal, 500 for a failure.
        pub fn into_server_error(self) -> ServerFnError {
            let status = match self {
                Self::Invalid(_) => axum::http::StatusCode::BAD_REQUEST,
                Self::Internal => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            };
            crate::session::refusal(status, self)
        }
    }

    #[async_trait::async_trait]
    pub trait AuditLog: Send + Sync + std::fmt::Debug {
        async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError>;
        /// Asks the helper to check its journal's whole hash chain, and compares its length with
        /// the records the audit log names.
        async fn journal_check(&self) -> Result<super::JournalReport, AuditError>;
    }

    pub type SharedAuditLog = Arc<dyn AuditLog>;

    pub async fn audit_log() -> Result<SharedAuditLog, ServerFnError> {
        require(Permission::ViewAudit).await?;
        Ok(expect_context::<SharedAuditLog>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_filter_matches_everything() {
        assert_eq!(
            AuditFilter::default().validate(),
            Ok(ValidFilter::default())
        );
        assert_eq!(AuditFilter::default().csv_href(), AUDIT_CSV_PATH);
    }

    #[test]
    fn filters_are_checked_and_carried_into_the_export_link() {
        let filter = AuditFilter {
            actor: " Ada ".into(),
            outcome: "refused".into(),
            from: "2025-11-25T13:00".into(),
            ..AuditFilter::default()
        };
        let valid = filter.validate().expect("valid");
        assert_eq!(valid.actor.as_deref(), Some("ada"));
        assert_eq!(valid.from, Some(1_764_075_600));
        assert_eq!(
            filter.csv_href(),
            "/audit.csv?actor=Ada&outcome=refused&from=2025-11-25T13%3A00"
        );
        let bad = |f: AuditFilter| f.validate().is_err();
        assert!(bad(AuditFilter {
            outcome: "maybe".into(),
            ..AuditFilter::default()
        }));
        assert!(bad(AuditFilter {
            from: "soon".into(),
            ..AuditFilter::default()
        }));
        assert!(bad(AuditFilter {
            from: "2025-11-26".into(),
            to: "2025-11-25".into(),
            ..AuditFilter::default()
        }));
    }

    #[test]
    fn a_range_ends_with_the_last_second_of_its_day_or_minute() {
        let range = |from: &str, to: &str| {
            let valid = AuditFilter {
                from: from.into(),
                to: to.into(),
                ..AuditFilter::default()
            }
            .validate()
            .expect("valid");
            (valid.from, valid.to)
        };
        assert_eq!(
            range("2025-11-25", "2025-11-25"),
            (Some(1_764_028_800), Some(1_764_115_199)),
            "the whole day"
        );
        assert_eq!(
            range("2025-11-25T13:04", "2025-11-25T13:04"),
            (Some(1_764_075_840), Some(1_764_075_899)),
            "the whole minute"
        );
        assert_eq!(range("", "1764075845"), (None, Some(1_764_075_845)));
    }

    #[test]
    fn a_cursor_reads_back_what_it_writes_and_nothing_else() {
        let cursor = AuditCursor {
            at: 1_764_075_845,
            id: 42,
        };
        assert_eq!(cursor.to_string(), "1764075845.42");
        assert_eq!(AuditCursor::parse("1764075845.42"), Some(cursor));
        for bad in ["", "1764075845", "a.b", "1.2.3", ".4"] {
            assert_eq!(AuditCursor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        let size = |page_size| {
            AuditQuery {
                page_size,
                ..AuditQuery::default()
            }
            .effective_page_size()
        };
        assert_eq!(size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(size(10), 10);
        assert_eq!(size(1_000_000), MAX_PAGE_SIZE);
    }

    #[test]
    fn a_journal_is_truncated_when_the_panel_knows_a_record_it_lacks() {
        let status = |records, broken: Option<&str>, panel_last_seq| JournalReport {
            check: ctguard_protocol::JournalCheck {
                records,
                broken: broken.map(str::to_owned),
                writable: true,
                mismatches: Vec::new(),
            },
            panel_last_seq,
        };
        assert!(!status(0, None, None).truncated(), "nothing done yet");
        assert!(
            !status(13, None, Some(12)).truncated(),
            "record 12 is the 13th"
        );
        assert!(status(12, None, Some(12)).truncated());
        assert!(status(0, None, Some(3)).truncated(), "a replaced journal");
        assert!(
            !status(2, Some("line 3: bad hash"), Some(12)).truncated(),
            "a broken chain is reported as broken"
        );
    }

    #[test]
    fn a_journal_is_rewritten_when_a_record_the_panel_knows_differs_or_is_gone() {
        let told = ctguard_protocol::JournalRef {
            seq: 41,
            hash: "a".repeat(64).try_into().expect("hash"),
        };
        let report = |mismatches| JournalReport {
            check: ctguard_protocol::JournalCheck {
                records: 60,
                broken: None,
                writable: true,
                mismatches,
            },
            panel_last_seq: Some(41),
        };
        assert!(report(Vec::new()).rewritten().is_none());
        let differs = ctguard_protocol::JournalMismatch {
            expected: told,
            found: Some("b".repeat(64).try_into().expect("hash")),
        };
        let rewritten = report(vec![differs.clone()]);
        assert_eq!(rewritten.rewritten(), Some(&differs));
        assert!(
            !rewritten.truncated(),
            "long enough, and still not the same journal"
        );
    }
}
