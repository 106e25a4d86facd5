//! Station tokens: what lets a kiosk write, and only as its own station.
//!
//! `linecheck-server enroll-station` or a supervisor's `POST /api/v1/stations` makes a random
//! token and shows it once; the database keeps only its
//! SHA-256, so a copy of the database does not let anyone push. A token's first push binds it to
//! the pushing device (see `sync.rs`).

use crate::{
    ApiError, AppState, hex, now_text, parse_json, parse_utc_text, supervisors::Supervisor,
};
use anyhow::Context;
use axum::{
    Json,
    body::Bytes,
    extract::{FromRequestParts, State, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use protocol::{EnrollStationRequest, EnrolledStation, StationSummary};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

/// The station a request's bearer token was enrolled for.
#[derive(Debug, Clone)]
pub(crate) struct Station {
    pub(crate) name: String,
    pub(crate) token_sha256: String,
}

pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A station name as enrolled, trimmed; the same rule a record's `station` must satisfy, or its
/// records could never be accepted.
fn station_name(station: &str) -> Result<&str, String> {
    let station = station.trim();
    if station.is_empty() || station.chars().count() > 200 {
        return Err("a station name must have 1 to 200 characters".into());
    }
    Ok(station)
}

/// Creates a token for `station` and returns it; it cannot be read back later.
pub async fn enroll_station(db: &AnyPool, station: &str) -> anyhow::Result<String> {
    let station = station_name(station).map_err(anyhow::Error::msg)?;
    store_new_token(db, station)
        .await
        .context("cannot store the station token")
}

async fn store_new_token(db: &AnyPool, station: &str) -> Result<String, sqlx::Error> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = hex(&secret);
    sqlx::query(
        "INSERT INTO station_tokens (token_sha256, station, created_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(station)
    .bind(now_text())
    .execute(db)
    .await?;
    Ok(token)
}

/// `POST /api/v1/stations`: a supervisor enrolls a station's kiosk, as `enroll-station` does.
/// Enrolling a station again issues another token (a replaced tablet) and keeps the old ones.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EnrolledStation>), ApiError> {
    let request: EnrollStationRequest = parse_json(body)?;
    let station = station_name(&request.station)
        .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, format!("station: {reason}")))?;
    let token = store_new_token(&state.db.pool, station)
        .await
        .map_err(ApiError::database)?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolledStation {
            station: station.to_owned(),
            token,
        }),
    ))
}

/// `GET /api/v1/stations`: every enrolled station with its first enrollment and last push.
pub(crate) async fn list(
    State(state): State<AppState>,
    _supervisor: Supervisor,
) -> Result<Json<Vec<StationSummary>>, ApiError> {
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT t.station, MIN(t.created_at), COUNT(*), MAX(c.updated_at)
         FROM station_tokens t LEFT JOIN device_cursors c ON c.device_id = t.device_id
         GROUP BY t.station ORDER BY t.station",
    )
    .fetch_all(&state.db.pool)
    .await
    .map_err(ApiError::database)?;
    let stations = rows
        .into_iter()
        .map(|(station, enrolled_at, tokens, last_push_at)| {
            Ok(StationSummary {
                station,
                enrolled_at: parse_utc_text(&enrolled_at)?,
                tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
                last_push_at: last_push_at.as_deref().map(parse_utc_text).transpose()?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(stations))
}

impl FromRequestParts<AppState> for Station {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |reason: &str| ApiError::new(StatusCode::UNAUTHORIZED, reason);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <station token>"))?
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        let token_sha256 = token_hash(token.trim());
        let station: Option<String> =
            sqlx::query_scalar("SELECT station FROM station_tokens WHERE token_sha256 = $1")
                .bind(&token_sha256)
                .fetch_optional(&state.db.pool)
                .await
                .map_err(ApiError::database)?;
        let name = station.ok_or_else(|| unauthorized("unknown station token"))?;
        Ok(Station { name, token_sha256 })
    }
}
