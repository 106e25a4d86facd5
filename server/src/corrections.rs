//! `POST /api/v1/inspections/{id}/corrections`: a supervisor corrects a stored inspection. The
//! correction is audited and reaches the inspection's station with its next pull.

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
use protocol::{Correction, CorrectionAction, InspectionRecord};
use uuid::Uuid;

pub(crate) async fn correct(
    State(state): State<AppState>,
    supervisor: Supervisor,
    Path(inspection_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Correction>), ApiError> {
    let inspection_id: Uuid = inspection_id.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{inspection_id:?} is not an inspection id (a UUID): {e}"),
        )
    })?;
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
                "correct_inspection",
                &inspection_id.to_string(),
                &correction.action,
            )
            .await?;
        Ok((StatusCode::CREATED, Json(correction)))
    })
    .await
}
