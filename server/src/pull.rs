//! `GET /api/v1/sync/pull`: what supervisors changed for the pulling station since its cursor.
//! The contract is documented on `protocol::PullResponse`'s module.

use crate::{ApiError, AppState, auth::Station, changes::committed_head, settings};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use protocol::{Correction, MAX_PULL_CORRECTIONS, PullResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct PullQuery {
    protocol_version: u32,
    #[serde(default)]
    since: u64,
}

pub(crate) async fn pull(
    State(state): State<AppState>,
    station: Station,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Json<PullResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    protocol::check_version(query.protocol_version)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    let since = i64::try_from(query.since).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("since: {} is larger than {}", query.since, i64::MAX),
        )
    })?;
    // Read first: every change numbered up to it has committed (see `changes.rs`), so nothing
    // at or below the cursor we answer can appear later.
    let head = committed_head(&state.db).await?;
    if since > head {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "since: cursor {since} is ahead of this server's changes ({head}); pull from 0 \
                 (was the server's database replaced?)"
            ),
        ));
    }
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, inspection_id, action_json, supervisor, corrected_at, change_seq
         FROM corrections WHERE station = $1 AND change_seq > $2 AND change_seq <= $3
         ORDER BY change_seq LIMIT $4",
    )
    .bind(&station.name)
    .bind(since)
    .bind(head)
    .bind(MAX_PULL_CORRECTIONS as i64 + 1)
    .fetch_all(&state.db.pool)
    .await
    .map_err(ApiError::database)?;
    let more = rows.len() > MAX_PULL_CORRECTIONS;
    let mut cursor = head;
    let mut corrections = Vec::with_capacity(rows.len().min(MAX_PULL_CORRECTIONS));
    for (id, inspection_id, action, supervisor, corrected_at, seq) in
        rows.into_iter().take(MAX_PULL_CORRECTIONS)
    {
        let stored =
            |e: &dyn std::fmt::Display| ApiError::internal(format!("correction {id}: {e}"));
        corrections.push(Correction {
            id: id.parse().map_err(|e| stored(&e))?,
            inspection_id: inspection_id.parse().map_err(|e| stored(&e))?,
            action: serde_json::from_str(&action).map_err(|e| stored(&e))?,
            supervisor,
            corrected_at: crate::parse_utc_text(&corrected_at)?,
        });
        if more {
            cursor = seq;
        }
    }
    // The whole current settings, when they changed after `since`; if they changed after
    // `cursor` too they come again next time, which a kiosk applies as the same state.
    let settings = settings::station_settings(&state.db.pool, &station.name)
        .await?
        .filter(|(_, changed)| *changed > since)
        .map(|(settings, _)| settings);
    Ok(Json(PullResponse {
        protocol_version: protocol::PROTOCOL_VERSION,
        cursor: u64::try_from(cursor).expect("change numbers start at 1"),
        settings,
        corrections,
        more,
    }))
}
