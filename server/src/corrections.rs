//! `POST /api/v1/inspections/{id}/corrections`: a supervisor corrects a stored inspection. The
//! correction is audited and reaches the inspection's station with its next pull. `GET` of the
//! same path lists an inspection's corrections in the order they were made.

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
use protocol::{AuditChange, Correction, CorrectionAction, InspectionRecord};
use uuid::Uuid;

pub(crate) async fn correct(
    State(state): State<AppState>,
    supervisor: Supervisor,
    Path(inspection_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Correction>), ApiError> {
    let inspection_id = parse_inspection_id(&inspection_id)?;
    let action: CorrectionAction = parse_json(body)?;
    let stored: Option<(String, String)> =
        sqlx::query_as("SELECT station, record_json FROM inspections WHERE id = $1")
            .bind(inspection_id.to_string())
            .fetch_optional(&state.db.pool)
            .await
            .map_err(ApiError::database)?;
    let (station, record) = stored.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no inspection {inspection_id}"),
        )
    })?;
    let record: InspectionRecord = serde_json::from_str(&record)
        .map_err(|e| ApiError::internal(format!("stored inspection {inspection_id}: {e}")))?;
    action
        .validate(record.detections.len())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;

    run_to_end(async move {
        let mut change = Change::begin(&state.db).await?;
        let correction = Correction {
            id: Uuid::new_v4(),
            inspection_id,
            action,
            supervisor: supervisor.name,
            corrected_at: parse_utc_text(&change.at)?,
        };
        let action_json = serde_json::to_string(&correction.action)
            .map_err(|e| ApiError::internal(format!("cannot encode the correction: {e}")))?;
        sqlx::query(
            "INSERT INTO corrections (id, inspection_id, station, action_json, supervisor,
               corrected_at, change_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(correction.id.to_string())
        .bind(inspection_id.to_string())
        .bind(&station)
        .bind(&action_json)
        .bind(&correction.supervisor)
        .bind(&change.at)
        .bind(change.seq)
        .execute(&mut *change.tx)
        .await
        .map_err(ApiError::database)?;
        change
            .commit(
                &correction.supervisor,
                &inspection_id.to_string(),
                Some(&station),
                &AuditChange::CorrectInspection(correction.action.clone()),
            )
            .await?;
        Ok((StatusCode::CREATED, Json(correction)))
    })
    .await
}

/// `GET /api/v1/inspections/{id}/corrections`: the inspection's corrections, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    Path(inspection_id): Path<String>,
) -> Result<Json<Vec<Correction>>, ApiError> {
    let inspection_id = parse_inspection_id(&inspection_id)?;
    let known: Option<String> = sqlx::query_scalar("SELECT id FROM inspections WHERE id = $1")
        .bind(inspection_id.to_string())
        .fetch_optional(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    if known.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no inspection {inspection_id}"),
        ));
    }
    Ok(Json(corrections_of(&state, inspection_id).await?))
}

fn parse_inspection_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not an inspection id (a UUID): {e}"),
        )
    })
}

/// The corrections of one inspection, in the order they were made.
pub(crate) async fn corrections_of(
    state: &AppState,
    inspection_id: Uuid,
) -> Result<Vec<Correction>, ApiError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, action_json, supervisor, corrected_at FROM corrections
         WHERE inspection_id = $1 ORDER BY change_seq",
    )
    .bind(inspection_id.to_string())
    .fetch_all(&state.db.pool)
    .await
    .map_err(ApiError::database)?;
    rows.into_iter()
        .map(|(id, action, supervisor, corrected_at)| {
            let stored = |e: String| {
                ApiError::internal(format!("a stored correction of {inspection_id}: {e}"))
            };
            Ok(Correction {
                id: id.parse().map_err(|e: uuid::Error| stored(e.to_string()))?,
                inspection_id,
                action: serde_json::from_str(&action).map_err(|e| stored(e.to_string()))?,
                supervisor,
                corrected_at: parse_utc_text(&corrected_at)?,
            })
        })
        .collect()
}
