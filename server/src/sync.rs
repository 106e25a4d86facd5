//! `POST /api/v1/sync/push`: a kiosk's outbox into the database, exactly once.
//!
//! The contract is documented on `protocol::PushRequest`'s module. Here it rests on three things:
//! the record id as primary key (insert-or-ignore), `UNIQUE (device_id, sequence)`, and one
//! transaction per request, so a failed request leaves nothing behind and a retried one finds
//! what it already applied.

use crate::{
    ApiError, AppState, auth::Station, db::Database, now_text, parse_json, run_to_end,
    snapshots::jpeg_size, utc_text,
};
use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::StatusCode,
};
use protocol::{InspectionRecord, PushItemResult, PushRequest, PushResponse, PushStatus, Verdict};
use serde::Deserialize;
use sqlx::{Any, Transaction};

/// Only the version, read before the body is parsed as a whole: a kiosk of another version may
/// send records of another shape, and deserves "update the kiosk", not a parse error.
#[derive(Deserialize)]
struct VersionProbe {
    protocol_version: u32,
}

fn rejected(reason: impl Into<String>, retryable: bool) -> PushStatus {
    PushStatus::Rejected {
        reason: reason.into(),
        retryable,
    }
}

pub(crate) async fn push(
    State(state): State<AppState>,
    station: Station,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PushResponse>, ApiError> {
    if let Ok(body) = &body
        && let Ok(probe) = serde_json::from_slice::<VersionProbe>(body)
    {
        protocol::check_version(probe.protocol_version)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    }
    let request: PushRequest = parse_json(body)?;

    let device_id = request.device_id.to_string();
    for record in &request.records {
        if record.device_id != request.device_id {
            return Err(ApiError::forbidden(format!(
                "record {} belongs to device {}, not to the pushing device {device_id}",
                record.id, record.device_id
            )));
        }
        if record.station != station.name {
            return Err(ApiError::forbidden(format!(
                "record {} is from station {:?}, but this token is for station {:?}",
                record.id, record.station, station.name
            )));
        }
    }

    // Checked before the transaction, so the database is not locked while storage answers.
    // Sound because snapshots are never deleted.
    let mut prechecked = Vec::with_capacity(request.records.len());
    for record in &request.records {
        prechecked.push(precheck(&state, record).await?);
    }

    // On PostgreSQL the simulation lost a station token to a push dropped mid-`BEGIN`.
    let results = run_to_end(apply_batch(
        state.db.clone(),
        station,
        device_id,
        request.records,
        prechecked,
    ))
    .await?;
    Ok(Json(PushResponse { results }))
}

/// Applies the records that passed `precheck` (`Ok` in `prechecked`) in one transaction.
async fn apply_batch(
    db: Database,
    station: Station,
    device_id: String,
    records: Vec<InspectionRecord>,
    prechecked: Vec<Result<Frame, PushStatus>>,
) -> Result<Vec<PushItemResult>, ApiError> {
    let mut tx = db
        .pool
        .begin_with(db.dialect.begin_write())
        .await
        .map_err(ApiError::database)?;
    lock_station(&mut tx, &station, &device_id).await?;
    let mut results = Vec::with_capacity(records.len());
    let mut highest_applied = None;
    for (record, checked) in records.iter().zip(prechecked) {
        let status = match checked {
            Err(status) => status,
            Ok(frame) => apply(&mut tx, record, frame).await?,
        };
        if status == PushStatus::Applied {
            highest_applied = highest_applied.max(Some(record.sequence));
        }
        results.push(PushItemResult {
            id: record.id,
            status,
        });
    }
    if let Some(sequence) = highest_applied {
        advance_cursor(&mut tx, &device_id, sequence).await?;
    }
    tx.commit().await.map_err(ApiError::database)?;
    Ok(results)
}

/// Where a JPEG header's start-of-frame segment is looked for: beyond any EXIF block (64 KiB).
const JPEG_HEAD_BYTES: usize = 70 * 1024;

/// A record that passed `precheck`: its snapshot's `(width, height)`, when it has one with a
/// readable JPEG header.
type Frame = Option<(u16, u16)>;

/// Everything that rejects a record without looking at the database: `Err` when rejected.
async fn precheck(
    state: &AppState,
    record: &InspectionRecord,
) -> Result<Result<Frame, PushStatus>, ApiError> {
    if let Err(e) = record.validate() {
        return Ok(Err(rejected(e.to_string(), false)));
    }
    if i64::try_from(record.sequence).is_err() {
        return Ok(Err(rejected(
            format!("sequence {} is larger than {}", record.sequence, i64::MAX),
            false,
        )));
    }
    let Some(snapshot) = &record.snapshot else {
        return Ok(Ok(None));
    };
    let lookup =
        |e: std::io::Error| ApiError::internal(format!("cannot look up the snapshot: {e}"));
    let stored = state
        .snapshots
        .stored_len(&snapshot.sha256)
        .await
        .map_err(lookup)?;
    match stored {
        None => {
            return Ok(Err(rejected(
                format!(
                    "snapshot {} is not stored yet: upload the snapshot first",
                    snapshot.sha256
                ),
                true,
            )));
        }
        Some(len) if len != snapshot.byte_len => {
            return Ok(Err(rejected(
                format!(
                    "snapshot {} has {len} bytes, but the record says {}",
                    snapshot.sha256, snapshot.byte_len
                ),
                false,
            )));
        }
        Some(_) => {}
    }
    let head = state
        .snapshots
        .read_head(&snapshot.sha256, JPEG_HEAD_BYTES)
        .await
        .map_err(lookup)?;
    Ok(Ok(head.as_deref().and_then(jpeg_size)))
}

/// A token's first push binds it to the pushing device; from then on only that device may use it,
/// and a device bound to one token cannot push with another.
///
/// The update always matches the token's row, even when it changes nothing, so on PostgreSQL it
/// also locks that row until the push commits: pushes of one device (one token) run one after
/// the other, and a waiting one then sees everything the first one stored.
async fn lock_station(
    tx: &mut Transaction<'static, Any>,
    station: &Station,
    device_id: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE station_tokens SET device_id = CASE
           WHEN device_id IS NULL
             AND NOT EXISTS (SELECT 1 FROM station_tokens WHERE device_id = $1) THEN $1
           ELSE device_id END
         WHERE token_sha256 = $2",
    )
    .bind(device_id)
    .bind(&station.token_sha256)
    .execute(&mut **tx)
    .await
    .map_err(ApiError::database)?;
    let bound: Option<String> =
        sqlx::query_scalar("SELECT device_id FROM station_tokens WHERE token_sha256 = $1")
            .bind(&station.token_sha256)
            .fetch_one(&mut **tx)
            .await
            .map_err(ApiError::database)?;
    match bound {
        Some(bound) if bound == device_id => Ok(()),
        Some(bound) => Err(ApiError::forbidden(format!(
            "this station token belongs to device {bound}, not {device_id}"
        ))),
        None => Err(ApiError::forbidden(format!(
            "device {device_id} is enrolled with another station token"
        ))),
    }
}

/// Inserts one valid record unless its id or its (device, sequence) is stored already.
async fn apply(
    tx: &mut Transaction<'static, Any>,
    record: &InspectionRecord,
    frame: Frame,
) -> Result<PushStatus, ApiError> {
    let record_json = serde_json::to_string(record)
        .map_err(|e| ApiError::internal(format!("cannot encode the record: {e}")))?;
    let sequence = i64::try_from(record.sequence).expect("checked in precheck");
    let verdict = match record.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
    };
    let inserted = sqlx::query(
        "INSERT INTO inspections (id, device_id, sequence, inspected_at, local_time, station, line,
         operator, part_serial, lot, model_id, model_version, verdict, record_json,
         snapshot_sha256, received_at, snapshot_width, snapshot_height)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT DO NOTHING",
    )
    .bind(record.id.to_string())
    .bind(record.device_id.to_string())
    .bind(sequence)
    .bind(utc_text(record.inspected_at))
    .bind(record.local_time.to_rfc3339())
    .bind(&record.station)
    .bind(&record.line)
    .bind(&record.operator)
    .bind(&record.part_serial)
    .bind(&record.lot)
    .bind(&record.model.id)
    .bind(&record.model.version)
    .bind(verdict)
    .bind(record_json)
    .bind(record.snapshot.as_ref().map(|s| s.sha256.as_str()))
    .bind(now_text())
    .bind(frame.map(|(width, _)| i64::from(width)))
    .bind(frame.map(|(_, height)| i64::from(height)))
    .execute(&mut **tx)
    .await
    .map_err(ApiError::database)?;
    if inserted.rows_affected() == 1 {
        insert_detections(tx, record).await?;
        return Ok(PushStatus::Applied);
    }

    let stored: Option<String> =
        sqlx::query_scalar("SELECT record_json FROM inspections WHERE id = $1")
            .bind(record.id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(ApiError::database)?;
    if let Some(stored) = stored {
        // A repeat must be the same record; anything else is a kiosk bug to surface, not hide.
        let same = serde_json::from_str::<InspectionRecord>(&stored).is_ok_and(|s| s == *record);
        return Ok(if same {
            PushStatus::AlreadyApplied
        } else {
            rejected(
                format!(
                    "record {} is already stored with different content",
                    record.id
                ),
                false,
            )
        });
    }
    let holder: String =
        sqlx::query_scalar("SELECT id FROM inspections WHERE device_id = $1 AND sequence = $2")
            .bind(record.device_id.to_string())
            .bind(sequence)
            .fetch_one(&mut **tx)
            .await
            .map_err(ApiError::database)?;
    Ok(rejected(
        format!(
            "sequence {} of device {} is already taken by record {holder}",
            record.sequence, record.device_id
        ),
        false,
    ))
}

/// The record's detections as rows for the review queries (class filter, Pareto, heat map).
async fn insert_detections(
    tx: &mut Transaction<'static, Any>,
    record: &InspectionRecord,
) -> Result<(), ApiError> {
    if record.detections.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..record.detections.len())
        .map(|i| {
            let p = i * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO inspection_detections
           (inspection_id, position, class_id, label, score, centre_x, centre_y)
         VALUES {}",
        rows.join(", ")
    );
    let id = record.id.to_string();
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (position, d) in record.detections.iter().enumerate() {
        // Validated: finite coordinates, so the rounded centres fit.
        let centre = |a: f32, b: f32| ((f64::from(a) + f64::from(b)) / 2.0).round() as i64;
        insert = insert
            .bind(id.clone())
            .bind(position as i32)
            .bind(i64::from(d.class_id))
            .bind(d.label.clone())
            .bind(f64::from(d.score))
            .bind(centre(d.bbox.x1, d.bbox.x2))
            .bind(centre(d.bbox.y1, d.bbox.y2));
    }
    insert
        .execute(&mut **tx)
        .await
        .map_err(ApiError::database)?;
    Ok(())
}

async fn advance_cursor(
    tx: &mut Transaction<'static, Any>,
    device_id: &str,
    sequence: u64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO device_cursors (device_id, highest_sequence, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO UPDATE SET
           highest_sequence = CASE WHEN excluded.highest_sequence > device_cursors.highest_sequence
             THEN excluded.highest_sequence ELSE device_cursors.highest_sequence END,
           updated_at = excluded.updated_at",
    )
    .bind(device_id)
    .bind(i64::try_from(sequence).expect("checked in precheck"))
    .bind(now_text())
    .execute(&mut **tx)
    .await
    .map_err(ApiError::database)?;
    Ok(())
}
