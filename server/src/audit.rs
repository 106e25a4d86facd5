//! `GET /api/v1/audit`: the audit trail that every supervisor change writes (`changes.rs`), newest
//! first, paged by change number (a keyset, never OFFSET), filtered by kind, station, supervisor
//! and time.

use crate::{
    ApiError, AppState, parse_utc_text,
    review::{Where, bad_request, parse_time},
    supervisors::Supervisor,
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use protocol::{AuditChange, AuditEntry, AuditPage, MAX_AUDIT_ENTRIES};
use serde::Deserialize;

const DEFAULT_PAGE_ENTRIES: u32 = 100;

/// The audit trail's filters; unknown parameters are refused, so a misspelt filter is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditFilters {
    /// One of `AuditChange::KINDS`.
    kind: Option<String>,
    station: Option<String>,
    supervisor: Option<String>,
    /// At or after (RFC 3339).
    from: Option<String>,
    /// Before (RFC 3339).
    to: Option<String>,
    /// The `next_cursor` of the previous page: the last change number it held.
    cursor: Option<String>,
    limit: Option<u32>,
}

impl AuditFilters {
    fn to_where(&self) -> Result<Where, ApiError> {
        let mut w = Where::default();
        if let Some(kind) = &self.kind {
            if !AuditChange::KINDS.contains(&kind.as_str()) {
                return Err(bad_request(format!(
                    "kind: {kind:?} is none of {}",
                    AuditChange::KINDS.join(", ")
                )));
            }
            w.add("action = {}", &[kind]);
        }
        if let Some(station) = &self.station {
            w.add("station = {}", &[station]);
        }
        if let Some(supervisor) = &self.supervisor {
            w.add("supervisor = {}", &[supervisor]);
        }
        if let Some(from) = &self.from {
            w.add("at >= {}", &[&parse_time("from", from)?]);
        }
        if let Some(to) = &self.to {
            w.add("at < {}", &[&parse_time("to", to)?]);
        }
        if let Some(cursor) = &self.cursor {
            let seq: u64 = cursor.parse().map_err(|_| {
                bad_request(format!(
                    "cursor: {cursor:?} is not a cursor this server gave"
                ))
            })?;
            // Parameters are bound as text; the cast compares numbers on both databases.
            w.add("change_seq < CAST({} AS BIGINT)", &[&seq.to_string()]);
        }
        Ok(w)
    }

    fn limit(&self) -> Result<u32, ApiError> {
        crate::review::page_limit(self.limit, DEFAULT_PAGE_ENTRIES, MAX_AUDIT_ENTRIES)
    }
}

type AuditRow = (i64, String, String, String, String, Option<String>, String);

/// `GET /api/v1/audit`.
pub(crate) async fn audit(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    query: Result<Query<AuditFilters>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(filters) = query.map_err(|e| bad_request(e.body_text()))?;
    let limit = filters.limit()?;
    let w = filters.to_where()?;
    let sql = format!(
        "SELECT change_seq, supervisor, at, action, subject, station, details_json FROM audit_log
         {} ORDER BY change_seq DESC LIMIT {}",
        w.sql(),
        limit + 1
    );
    let mut rows: Vec<AuditRow> = w
        .query(&sql)
        .fetch_all(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some((seq, ..)) if more => Some(seq.to_string()),
        _ => None,
    };
    let entries = rows
        .into_iter()
        .map(|(seq, supervisor, at, kind, subject, station, details)| {
            let stored = |e: serde_json::Error| {
                ApiError::internal(format!("audit entry {seq} ({kind}): {e}"))
            };
            let details: serde_json::Value = serde_json::from_str(&details).map_err(stored)?;
            let change =
                serde_json::from_value(serde_json::json!({ "kind": kind, "details": details }))
                    .map_err(stored)?;
            Ok(AuditEntry {
                change_seq: seq as u64,
                supervisor,
                at: parse_utc_text(&at)?,
                subject,
                station,
                change,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
