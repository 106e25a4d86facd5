//! The supervisors' review: history pages (`GET /api/v1/inspections`), the same history as a
//! streamed CSV (`GET /api/v1/inspections.csv`) and the numbers behind the charts
//! (`GET /api/v1/stats`), all under one set of filters.
//!
//! History is ordered newest first by `(inspected_at, id)` and paged by that keyset, never by
//! OFFSET, so a page costs the same at the millionth record as at the first; every filter column
//! has an index in that order (migration 0005).

use crate::{ApiError, AppState, supervisors::Supervisor, utc_text};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use protocol::{
    ClassCount, DayYield, Heatmap, InspectionPage, InspectionRecord, MAX_PAGE_RECORDS,
    OperatorDecision, PeriodCount, ShiftCount, Stats,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

const DEFAULT_PAGE_RECORDS: u32 = 100;
/// Rows per database round trip of a CSV export.
const CSV_PAGE_RECORDS: u32 = 1000;
const HEATMAP_BINS: i64 = 10;

/// The filters every review endpoint takes; unknown parameters are refused, so a misspelt
/// filter is not silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filters {
    from: Option<String>,
    to: Option<String>,
    line: Option<String>,
    station: Option<String>,
    operator: Option<String>,
    verdict: Option<String>,
    class: Option<String>,
    lot: Option<String>,
    serial: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub(crate) fn bad_request(reason: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}

/// A `WHERE` clause and its text parameters, numbered `$1...` in order (over `inspections i` here,
/// over `audit_log` in `audit.rs`).
#[derive(Default, Clone)]
pub(crate) struct Where {
    clauses: Vec<String>,
    binds: Vec<String>,
}

impl Where {
    /// Adds `clause`, whose `{}`s each take the next parameter of `values`.
    pub(crate) fn add(&mut self, clause: &str, values: &[&str]) {
        let mut sql = String::new();
        let mut parts = clause.split("{}");
        sql.push_str(parts.next().unwrap_or_default());
        for (part, value) in parts.zip(values) {
            self.binds.push((*value).to_owned());
            sql.push_str(&format!("${}", self.binds.len()));
            sql.push_str(part);
        }
        self.clauses.push(sql);
    }

    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(crate) fn query<'q, O>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for value in &self.binds {
            query = query.bind(value.as_str());
        }
        query
    }
}

pub(crate) fn parse_time(field: &str, value: &str) -> Result<String, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| utc_text(t.with_timezone(&chrono::Utc)))
        .map_err(|e| {
            bad_request(format!(
                "{field}: {value:?} is not an RFC 3339 time such as 2026-11-24T08:00:00Z ({e})"
            ))
        })
}

/// A keyset position: the last record of a page, as `inspected_at|id`.
fn cursor_of(inspected_at: &str, id: &str) -> String {
    format!("{inspected_at}|{id}")
}

impl Filters {
    /// The filters as SQL, without the cursor.
    fn to_where(&self) -> Result<Where, ApiError> {
        let mut w = Where::default();
        if let Some(from) = &self.from {
            w.add("i.inspected_at >= {}", &[&parse_time("from", from)?]);
        }
        if let Some(to) = &self.to {
            w.add("i.inspected_at < {}", &[&parse_time("to", to)?]);
        }
        let columns = [
            ("i.line", &self.line),
            ("i.station", &self.station),
            ("i.operator", &self.operator),
            ("i.lot", &self.lot),
            ("i.part_serial", &self.serial),
        ];
        for (column, value) in columns {
            if let Some(value) = value {
                w.add(&format!("{column} = {{}}"), &[value]);
            }
        }
        if let Some(verdict) = &self.verdict {
            if !["pass", "fail"].contains(&verdict.as_str()) {
                return Err(bad_request(format!(
                    "verdict: {verdict:?} is neither pass nor fail"
                )));
            }
            w.add("i.verdict = {}", &[verdict]);
        }
        if let Some(class) = &self.class {
            w.add(
                "EXISTS (SELECT 1 FROM inspection_detections c
                   WHERE c.inspection_id = i.id AND c.label = {})",
                &[class],
            );
        }
        Ok(w)
    }

    fn limit(&self) -> Result<u32, ApiError> {
        page_limit(self.limit, DEFAULT_PAGE_RECORDS, MAX_PAGE_RECORDS)
    }

    /// The filters with the keyset position `cursor` (records older than it).
    fn to_where_after(&self, cursor: Option<&str>) -> Result<Where, ApiError> {
        let mut w = self.to_where()?;
        if let Some(cursor) = cursor {
            let invalid = || {
                bad_request(format!(
                    "cursor: {cursor:?} is not a cursor this server gave"
                ))
            };
            let (at, id) = cursor.split_once('|').ok_or_else(invalid)?;
            chrono::DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
            id.parse::<Uuid>().map_err(|_| invalid())?;
            w.add("(i.inspected_at, i.id) < ({}, {})", &[at, id]);
        }
        Ok(w)
    }
}

/// A page's `limit` parameter: `default` when absent, else within `1..=max`.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(limit) => Err(bad_request(format!(
            "limit: {limit} is not within 1..={max}"
        ))),
    }
}

pub(crate) fn query_filters(
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Filters, ApiError> {
    let Query(filters) = query.map_err(|e| bad_request(e.body_text()))?;
    Ok(filters)
}

/// One page: the records and the cursor after them, if more may follow.
async fn page(
    state: &AppState,
    filters: &Filters,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<InspectionRecord>, Option<String>), ApiError> {
    let w = filters.to_where_after(cursor)?;
    let sql = format!(
        "SELECT i.record_json, i.inspected_at, i.id FROM inspections i {}
         ORDER BY i.inspected_at DESC, i.id DESC LIMIT {}",
        w.sql(),
        limit + 1
    );
    let mut rows: Vec<(String, String, String)> = w
        .query(&sql)
        .fetch_all(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some((_, at, id)) if more => Some(cursor_of(at, id)),
        _ => None,
    };
    let records = rows
        .into_iter()
        .map(|(json, _, id)| {
            serde_json::from_str(&json)
                .map_err(|e| ApiError::internal(format!("stored inspection {id}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok((records, next))
}

/// Every record the filters match, for exports that need them all (without cursor or limit).
pub(crate) async fn all_records(
    state: &AppState,
    filters: &Filters,
) -> Result<Vec<InspectionRecord>, ApiError> {
    if filters.cursor.is_some() || filters.limit.is_some() {
        return Err(bad_request(
            "cursor and limit page the JSON history; an export holds every matching record".into(),
        ));
    }
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let (mut page_records, next) =
            page(state, filters, cursor.as_deref(), CSV_PAGE_RECORDS).await?;
        records.append(&mut page_records);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(records),
        }
    }
}

/// `GET /api/v1/inspections`.
pub(crate) async fn inspections(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Json<InspectionPage>, ApiError> {
    let filters = query_filters(query)?;
    let limit = filters.limit()?;
    let (records, next_cursor) = page(&state, &filters, filters.cursor.as_deref(), limit).await?;
    Ok(Json(InspectionPage {
        records,
        next_cursor,
    }))
}

const CSV_HEADER: &str = "id,inspected_at,local_time,station,line,operator,part_serial,lot,\
model_id,model_version,verdict,decision,decision_reason,detections,classes,max_score,\
snapshot_sha256\n";

/// A CSV field, quoted when it holds a separator, a quote or a line break. A leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv_row(r: &InspectionRecord) -> String {
    let (decision, reason) = match &r.decision {
        OperatorDecision::Confirmed => ("confirmed", ""),
        OperatorDecision::OverriddenOk { reason } => ("overridden_ok", reason.as_str()),
        OperatorDecision::OverriddenNok { reason } => ("overridden_nok", reason.as_str()),
        OperatorDecision::Unsure => ("unsure", ""),
    };
    let classes: Vec<&str> = r.detections.iter().map(|d| d.label.as_str()).collect();
    let max_score = r
        .detections
        .iter()
        .map(|d| d.score)
        .fold(None, |best: Option<f32>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        });
    let verdict = match r.verdict {
        protocol::Verdict::Pass => "pass",
        protocol::Verdict::Fail => "fail",
    };
    let fields = [
        r.id.to_string(),
        utc_text(r.inspected_at),
        r.local_time.to_rfc3339(),
        r.station.clone(),
        r.line.clone(),
        r.operator.clone(),
        r.part_serial.clone(),
        r.lot.clone(),
        r.model.id.clone(),
        r.model.version.clone(),
        verdict.to_owned(),
        decision.to_owned(),
        reason.to_owned(),
        r.detections.len().to_string(),
        classes.join(";"),
        max_score.map(|s| s.to_string()).unwrap_or_default(),
        r.snapshot
            .as_ref()
            .map(|s| s.sha256.clone())
            .unwrap_or_default(),
    ];
    let mut line = fields.map(|f| csv_field(&f)).join(",");
    line.push('\n');
    line
}

/// `GET /api/v1/inspections.csv`: every record under the filters, streamed page by page, so an
/// export of a million rows holds one page in memory at a time.
pub(crate) async fn inspections_csv(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let filters = query_filters(query)?;
    if filters.cursor.is_some() || filters.limit.is_some() {
        return Err(bad_request(
            "cursor and limit page the JSON history; the CSV export holds every matching record"
                .into(),
        ));
    }
    // Refused here, with a status, rather than in the middle of the stream.
    filters.to_where()?;
    enum Next {
        Header,
        After(Option<String>),
        Done,
    }
    let stream = futures_util::stream::unfold(Next::Header, move |next| {
        let (state, filters) = (state.clone(), filters.clone());
        async move {
            let cursor = match next {
                Next::Done => return None,
                Next::Header => {
                    return Some((
                        Ok(Bytes::from_static(CSV_HEADER.as_bytes())),
                        Next::After(None),
                    ));
                }
                Next::After(cursor) => cursor,
            };
            match page(&state, &filters, cursor.as_deref(), CSV_PAGE_RECORDS).await {
                Ok((records, next_cursor)) => {
                    let chunk: String = records.iter().map(csv_row).collect();
                    let next = next_cursor.map_or(Next::Done, |c| Next::After(Some(c)));
                    Some((Ok(Bytes::from(chunk)), next))
                }
                // The status is sent already: the client sees the download cut short.
                Err(e) => Some((Err(std::io::Error::other(format!("{e:?}"))), Next::Done)),
            }
        }
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"linecheck-inspections.csv\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /api/v1/stats`.
pub(crate) async fn stats(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let filters = query_filters(query)?;
    if filters.cursor.is_some() || filters.limit.is_some() {
        return Err(bad_request(
            "cursor and limit page the history; stats cover every matching record".into(),
        ));
    }
    let w = filters.to_where()?;
    let db = &state.db.pool;
    let failed = "SUM(CASE WHEN i.verdict = 'fail' THEN 1 ELSE 0 END)";
    let hours: Vec<(String, i64, i64)> = w
        .query(&format!(
            "SELECT SUBSTR(i.local_time, 1, 13), COUNT(*), {failed} FROM inspections i {}
             GROUP BY SUBSTR(i.local_time, 1, 13) ORDER BY 1",
            w.sql()
        ))
        .fetch_all(db)
        .await
        .map_err(ApiError::database)?;
    // Detections, of the filtered class only when one is asked for.
    let mut detections = w.clone();
    if let Some(class) = &filters.class {
        detections.add("d.label = {}", &[class]);
    }
    // One pass over the detections for both the Pareto (by label) and the heat map (by cell;
    // none for records without a snapshot size).
    let framed = "i.snapshot_width > 0 AND i.snapshot_height > 0";
    let cells: Vec<(String, Option<i64>, Option<i64>, i64)> = detections
        .query(&format!(
            "SELECT d.label,
               CASE WHEN {framed} THEN (d.centre_x * {HEATMAP_BINS}) / i.snapshot_width END,
               CASE WHEN {framed} THEN (d.centre_y * {HEATMAP_BINS}) / i.snapshot_height END,
               COUNT(*)
             FROM inspection_detections d JOIN inspections i ON i.id = d.inspection_id {}
             GROUP BY 1, 2, 3",
            detections.sql()
        ))
        .fetch_all(db)
        .await
        .map_err(ApiError::database)?;

    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    // Days and shifts are sums of hours (`YYYY-MM-DDTHH`), so one scan of the inspections
    // serves all three charts.
    let mut days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut shifts: BTreeMap<(String, &str), (u64, u64)> = BTreeMap::new();
    let per_hour = hours
        .into_iter()
        .map(|(period, inspections, failed)| {
            let date = period[..period.len().min(10)].to_owned();
            let shift = match period.get(11..13).unwrap_or_default() {
                hour if ("06".."14").contains(&hour) => "early",
                hour if ("14".."22").contains(&hour) => "late",
                _ => "night",
            };
            for sums in [
                days.entry(date.clone()).or_default(),
                shifts.entry((date, shift)).or_default(),
            ] {
                sums.0 += count(inspections);
                sums.1 += count(failed);
            }
            PeriodCount {
                period,
                inspections: count(inspections),
                failed: count(failed),
            }
        })
        .collect();
    let yield_per_day = days
        .into_iter()
        .map(|(date, (inspections, failed))| DayYield {
            date,
            inspections,
            passed: inspections - failed,
            yield_ratio: (inspections - failed) as f64 / inspections.max(1) as f64,
        })
        .collect();
    let per_shift = shifts
        .into_iter()
        .map(|((date, shift), (inspections, failed))| ShiftCount {
            date,
            shift: shift.to_owned(),
            inspections,
            failed,
        })
        .collect();
    let mut classes: BTreeMap<&str, i64> = BTreeMap::new();
    for (label, _, _, n) in &cells {
        *classes.entry(label).or_default() += n;
    }
    let mut classes: Vec<(&str, i64)> = classes.into_iter().collect();
    // Most frequent first, then by name (the map's order, kept by the stable sort).
    classes.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let total: u64 = classes.iter().map(|(_, n)| count(*n)).sum();
    let mut running = 0;
    let pareto = classes
        .into_iter()
        .map(|(label, n)| {
            running += count(n);
            ClassCount {
                label: label.to_owned(),
                detections: count(n),
                cumulative_share: running as f64 / total.max(1) as f64,
            }
        })
        .collect();
    let bins = HEATMAP_BINS as usize;
    let mut counts = vec![0; bins * bins];
    for (column, row, n) in cells
        .iter()
        .filter_map(|&(_, column, row, n)| Some((column?, row?, n)))
    {
        // Boxes reaching past the frame's edge land in the edge cells.
        let clamp = |v: i64| v.clamp(0, HEATMAP_BINS - 1) as usize;
        counts[clamp(row) * bins + clamp(column)] += count(n);
    }
    Ok(Json(Stats {
        per_hour,
        per_shift,
        yield_per_day,
        pareto,
        heatmap: Heatmap {
            bins: HEATMAP_BINS as u32,
            counts,
        },
    }))
}
