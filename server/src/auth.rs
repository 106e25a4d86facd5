//! Station tokens: what lets a kiosk write, and only as its own station.
//!
//! `linecheck-server enroll-station` prints a random token once; the database keeps only its
//! SHA-256, so a copy of the database does not let anyone push. A token's first push binds it to
//! the pushing device (see `sync.rs`).

use crate::{ApiError, AppState, hex, now_text};
use anyhow::{Context, bail};
use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
};
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

/// Creates a token for `station` and returns it; it cannot be read back later.
pub async fn enroll_station(db: &AnyPool, station: &str) -> anyhow::Result<String> {
    let station = station.trim();
    // The same rule a record's `station` must satisfy, or its records could never be accepted.
    if station.is_empty() || station.chars().count() > 200 {
        bail!("a station name must have 1 to 200 characters");
    }
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
    .await
    .context("cannot store the station token")?;
    Ok(token)
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
