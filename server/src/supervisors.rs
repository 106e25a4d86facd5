//! Supervisor accounts and browser sessions.
//!
//! Passwords are stored only as argon2id hashes (`linecheck-server add-supervisor`). A login
//! creates a session: a random token in an HttpOnly, SameSite=Strict cookie (Secure when the
//! server speaks TLS), stored only as its SHA-256 with an expiry. Routes that need a supervisor
//! take the [`Supervisor`] extractor. Failed logins are throttled per name, and a login for an
//! unknown name spends the same argon2 work as a wrong password, so timing does not tell which
//! names exist.

use crate::{ApiError, AppState, hex, now_text, parse_json, parse_utc_text, utc_text};
use anyhow::{Context, bail};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use axum::{
    Json,
    body::Bytes,
    extract::{FromRequestParts, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use protocol::{LoginRequest, SessionInfo};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

/// The cookie that carries a session token.
pub const SESSION_COOKIE: &str = "linecheck_session";

/// How long a session lasts: a shift and its overtime.
const SESSION_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// Failed logins allowed per name within [`FAILURE_WINDOW`] before further tries are refused.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounds argon2's input, and what a login body may make the server hash.
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_NAME_CHARS: usize = 100;

/// The supervisor a request's session cookie belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Supervisor {
    pub(crate) name: String,
    token_sha256: String,
    expires_at: DateTime<Utc>,
}

fn check_name(name: &str) -> anyhow::Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        bail!("a supervisor name must have 1 to {MAX_NAME_CHARS} characters");
    }
    Ok(name)
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Creates the account `name`, or with `replace` sets a new password for an existing one.
pub async fn add_supervisor(
    db: &AnyPool,
    name: &str,
    password: &str,
    replace: bool,
) -> anyhow::Result<()> {
    let name = check_name(name)?;
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        bail!(
            "a password must have at least {MIN_PASSWORD_CHARS} characters and at most \
             {MAX_PASSWORD_BYTES} bytes"
        );
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let sql = if replace {
        "INSERT INTO supervisors (name, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash"
    } else {
        "INSERT INTO supervisors (name, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING"
    };
    let stored = sqlx::query(sql)
        .bind(name)
        .bind(hash)
        .bind(now_text())
        .execute(db)
        .await
        .context("cannot store the supervisor")?;
    if stored.rows_affected() == 0 {
        bail!("supervisor {name:?} exists already; pass --replace to set a new password");
    }
    if replace {
        // A new password ends every session the old one opened.
        sqlx::query("DELETE FROM supervisor_sessions WHERE supervisor = $1")
            .bind(name)
            .execute(db)
            .await
            .context("cannot end the supervisor's old sessions")?;
    }
    Ok(())
}

/// Whether `password` matches `stored` (a PHC string), or, without one, the same work spent on a
/// hash that matches nothing.
fn verify_password(stored: Option<&str>, password: &str) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| {
        hash_password("a password no supervisor has").expect("hashing a constant password")
    });
    let Ok(parsed) = PasswordHash::new(stored.unwrap_or(decoy)) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && stored.is_some()
}

/// Failed logins per name, kept in memory: a restart forgets them, which only helps an attacker
/// who can restart the server anyway.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// How long `name` must wait before another try, if it has failed too often.
    fn wait_for(&self, name: &str) -> Option<Duration> {
        let failures = self.failures.lock().expect("login throttle lock");
        let &(count, first) = failures.get(name)?;
        let elapsed = first.elapsed();
        (count >= MAX_FAILURES && elapsed < FAILURE_WINDOW).then(|| FAILURE_WINDOW - elapsed)
    }

    fn record_failure(&self, name: &str) {
        let mut failures = self.failures.lock().expect("login throttle lock");
        // Guessed names must not grow the map without bound: old windows are forgotten.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, first)| first.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures
            .entry(name.to_owned())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn forget(&self, name: &str) {
        self.failures
            .lock()
            .expect("login throttle lock")
            .remove(name);
    }
}

fn session_cookie(token: &str, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("a hex token makes a valid header")
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

fn token_sha256(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn unauthorized(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, reason)
}

/// `POST /api/v1/session`: a name and password in, a session cookie out.
pub(crate) async fn login(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let LoginRequest { name, password } = parse_json(body)?;
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("name: must have 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("password: longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if let Some(wait) = state.login_throttle.wait_for(&name) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins for {name:?}: try again in {} s",
                wait.as_secs() + 1
            ),
        ));
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM supervisors WHERE name = $1")
            .bind(&name)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(ApiError::database)?;
    let matches =
        tokio::task::spawn_blocking(move || verify_password(stored.as_deref(), &password))
            .await
            .map_err(|e| ApiError::internal(format!("password check failed: {e}")))?;
    if !matches {
        state.login_throttle.record_failure(&name);
        return Err(unauthorized("wrong supervisor name or password"));
    }
    state.login_throttle.forget(&name);

    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = hex(&secret);
    let now = Utc::now();
    let expires_at = now + SESSION_LIFETIME;
    sqlx::query(
        "INSERT INTO supervisor_sessions (token_sha256, supervisor, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_sha256(&token))
    .bind(&name)
    .bind(utc_text(now))
    .bind(utc_text(expires_at))
    .execute(&state.db.pool)
    .await
    .map_err(ApiError::database)?;
    // Expired sessions of anyone are dropped here, the one write path sessions have.
    sqlx::query("DELETE FROM supervisor_sessions WHERE expires_at < $1")
        .bind(utc_text(now))
        .execute(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    let cookie = session_cookie(&token, SESSION_LIFETIME.num_seconds(), state.secure_cookies);
    let info = SessionInfo {
        supervisor: name,
        expires_at,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(info)).into_response())
}

/// `GET /api/v1/session`: whose session this is.
pub(crate) async fn whoami(supervisor: Supervisor) -> Json<SessionInfo> {
    Json(SessionInfo {
        supervisor: supervisor.name,
        expires_at: supervisor.expires_at,
    })
}

/// `DELETE /api/v1/session`: ends this session and clears the cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    supervisor: Supervisor,
) -> Result<Response, ApiError> {
    sqlx::query("DELETE FROM supervisor_sessions WHERE token_sha256 = $1")
        .bind(&supervisor.token_sha256)
        .execute(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    let cookie = session_cookie("", 0, state.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

impl FromRequestParts<AppState> for Supervisor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers)
            .ok_or_else(|| unauthorized("not logged in: POST /api/v1/session first"))?;
        let token_sha256 = token_sha256(token);
        let session: Option<(String, String)> = sqlx::query_as(
            "SELECT supervisor, expires_at FROM supervisor_sessions WHERE token_sha256 = $1",
        )
        .bind(&token_sha256)
        .fetch_optional(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
        let (name, expires_at) =
            session.ok_or_else(|| unauthorized("unknown or ended session: log in again"))?;
        if expires_at <= now_text() {
            return Err(unauthorized("the session has expired: log in again"));
        }
        let expires_at = parse_utc_text(&expires_at)?;
        Ok(Supervisor {
            name,
            token_sha256,
            expires_at,
        })
    }
}
