//! `GET /audit.csv`: the audit log as a spreadsheet-safe CSV download, with the Audit page's
//! filters as query parameters. Cells that a spreadsheet would run as a formula are neutralised.

use axum::{
    Extension,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use ctguard_app::{
    admin::audit::AuditFilter,
    auth::{CurrentUser, Permission},
    utc,
};

use crate::{
    audit::{AuditEvent, AuditRecord, AuditStore, Outcome, PageAt},
    client_info::ClientInfo,
    clock::SharedClock,
};

/// At most this many rows per export (newest first); narrow the filter for older ones.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

const HEADER: [&str; 13] = [
    "time_utc",
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
    // Repeated refusals folded into one record: how many, and the last one's time (`time_utc`
    // is the first's).
    "count",
    "last_time_utc",
];

/// What the export handler needs.
#[derive(Debug, Clone)]
pub struct AuditExport {
    pub audit: AuditStore,
    pub clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error("flushing the CSV: {0}")]
    Flush(#[from] std::io::Error),
}

/// A cell a spreadsheet would read as a formula (or that a formula trick can hide behind) gets a
/// leading `'`, so it shows as text.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The CSV document of `records`, header first.
pub fn to_csv(records: &[AuditRecord]) -> Result<Vec<u8>, ExportError> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    writer.write_record(HEADER)?;
    for record in records {
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        let row = [
            utc::datetime(record.at),
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
            record.count.to_string(),
            utc::datetime(record.last_at.unwrap_or(record.at)),
        ];
        writer.write_record(row.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

pub async fn audit_csv(
    State(export): State<AuditExport>,
    user: Option<Extension<CurrentUser>>,
    client: ClientInfo,
    Query(filter): Query<AuditFilter>,
) -> Response {
    // The route table has already refused other roles; this is the second lock on the door.
    let Some(Extension(user)) = user.filter(|Extension(user)| user.may(Permission::ViewAudit))
    else {
        return (StatusCode::FORBIDDEN, "Your role does not allow this.").into_response();
    };
    let valid = match filter.validate() {
        Ok(valid) => valid,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let records = match export
        .audit
        .search(&valid, MAX_EXPORT_ROWS, PageAt::Offset(0))
        .await
    {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(%error, "reading the audit log for export failed");
            return internal_error();
        }
    };
    let body = match to_csv(&records) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "writing the audit CSV failed");
            return internal_error();
        }
    };
    let now = export.clock.now();
    let detail = format!("{} records", records.len());
    let query = filter.query_string();
    let mut event =
        AuditEvent::by(&user, &client, "audit.export", Outcome::Success).detail(&detail);
    if !query.is_empty() {
        event = event.target(&query);
    }
    if let Err(error) = export.audit.record(now, event).await {
        tracing::error!(%error, "auditing the audit export failed");
        return internal_error();
    }
    let filename = format!(
        "attachment; filename=\"ctguard-audit-{}.csv\"",
        utc::datetime(now).replace([' ', ':'], "-")
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong; the server log has the details.",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_left_alone() {
        assert_eq!(neutralise("=cmd()"), "'=cmd()");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2"), "'-2");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("ada"), "ada");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn cells_are_quoted_as_csv_needs() {
        let record = AuditRecord {
            id: 1,
            at: 0,
            actor: Some("=HYPERLINK(\"x\")".into()),
            role: None,
            client_addr: "192.0.2.1".into(),
            user_agent: "a, b".into(),
            action: "login".into(),
            target: None,
            outcome: "failed".into(),
            detail: Some("line one\nline two".into()),
            preview: None,
            journal_id: None,
            journal_hash: None,
            arguments: None,
            count: 1,
            last_at: None,
        };
        let text = String::from_utf8(to_csv(&[record]).expect("csv")).expect("utf-8");
        let mut lines = text.splitn(2, '\n');
        assert_eq!(
            lines.next(),
            Some(
                "time_utc,user,role,client_addr,user_agent,action,target,outcome,detail,preview,helper_journal,count,last_time_utc"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "1970-01-01 00:00:00,\"'=HYPERLINK(\"\"x\"\")\",,192.0.2.1,\"a, b\",login,,failed,\"line one\nline two\",,,1,1970-01-01 00:00:00\n"
            )
        );
    }
}
