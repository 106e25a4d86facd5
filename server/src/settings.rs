//! Station settings: the model a station runs and its thresholds, set by a supervisor
//! (`PUT /api/v1/stations/{station}/assignment`) and pulled by the station's kiosk.

use crate::{
    ApiError, AppState, changes::Change, parse_json, parse_utc_text, run_to_end,
    supervisors::Supervisor,
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
};
use protocol::{AssignmentRequest, AuditChange, ModelAssignment, StationSettings};
use sqlx::{Any, Executor};

/// The body limit of an assignment: room for `protocol::MAX_CLASS_THRESHOLDS` thresholds.
pub(crate) const MAX_ASSIGNMENT_BYTES: usize = 128 * 1024;

pub(crate) fn download_url(model_id: &str) -> String {
    format!("/api/v1/models/{model_id}/file")
}

type SettingsRow = (
    Option<String>,
    f64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// `station`'s current settings and the change that set them, if a supervisor ever set any.
pub(crate) async fn station_settings<'e>(
    db: impl Executor<'e, Database = Any>,
    station: &str,
) -> Result<Option<(StationSettings, i64)>, ApiError> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "SELECT s.model_id, s.default_threshold, s.thresholds_json, s.changed_by, s.changed_at,
                m.name, m.version, m.sha256, m.byte_len, s.change_seq
         FROM station_settings s LEFT JOIN models m ON m.id = s.model_id
         WHERE s.station = $1",
    )
    .bind(station)
    .fetch_optional(db)
    .await
    .map_err(ApiError::database)?;
    let Some((
        model_id,
        default_threshold,
        thresholds,
        changed_by,
        changed_at,
        name,
        version,
        sha256,
        byte_len,
        change_seq,
    )) = row
    else {
        return Ok(None);
    };
    let model = match (model_id, name, version, sha256, byte_len) {
        (Some(id), Some(name), Some(version), Some(sha256), Some(byte_len)) => {
            Some(ModelAssignment {
                download_url: download_url(&id),
                id,
                name,
                version,
                sha256,
                byte_len: u64::try_from(byte_len).unwrap_or(0),
            })
        }
        _ => None,
    };
    let settings = StationSettings {
        model,
        // Stored from an f32, so the conversion back is exact.
        default_threshold: default_threshold as f32,
        thresholds: serde_json::from_str(&thresholds)
            .map_err(|e| ApiError::internal(format!("stored thresholds: {e}")))?,
        changed_by,
        changed_at: parse_utc_text(&changed_at)?,
    };
    Ok(Some((settings, change_seq)))
}

/// `PUT /api/v1/stations/{station}/assignment`: sets a station's model and thresholds.
pub(crate) async fn assign(
    State(state): State<AppState>,
    supervisor: Supervisor,
    Path(station): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StationSettings>, ApiError> {
    let request: AssignmentRequest = parse_json(body)?;
    request
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let enrolled: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM station_tokens WHERE station = $1 LIMIT 1")
            .bind(&station)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(ApiError::database)?;
    if enrolled.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("station {station:?} is not enrolled"),
        ));
    }
    run_to_end(async move {
        let mut change = Change::begin(&state.db).await?;
        if let Some(model_id) = &request.model_id {
            let known: Option<String> = sqlx::query_scalar("SELECT id FROM models WHERE id = $1")
                .bind(model_id)
                .fetch_optional(&mut *change.tx)
                .await
                .map_err(ApiError::database)?;
            if known.is_none() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "no model {model_id:?}: upload it first (GET /api/v1/models lists them)"
                    ),
                ));
            }
        }
        let thresholds = serde_json::to_string(&request.thresholds)
            .map_err(|e| ApiError::internal(format!("cannot encode thresholds: {e}")))?;
        sqlx::query(
            "INSERT INTO station_settings (station, model_id, default_threshold, thresholds_json,
               change_seq, changed_by, changed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (station) DO UPDATE SET model_id = excluded.model_id,
               default_threshold = excluded.default_threshold,
               thresholds_json = excluded.thresholds_json, change_seq = excluded.change_seq,
               changed_by = excluded.changed_by, changed_at = excluded.changed_at",
        )
        .bind(&station)
        .bind(request.model_id.as_deref())
        .bind(f64::from(request.default_threshold))
        .bind(thresholds)
        .bind(change.seq)
        .bind(&supervisor.name)
        .bind(&change.at)
        .execute(&mut *change.tx)
        .await
        .map_err(ApiError::database)?;
        let (settings, _) = station_settings(&mut *change.tx, &station)
            .await?
            .expect("written above");
        change
            .commit(
                &supervisor.name,
                &station,
                Some(&station),
                &AuditChange::AssignStation(request),
            )
            .await?;
        Ok(Json(settings))
    })
    .await
}
