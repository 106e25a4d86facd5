//! The LineCheck server: serves the kiosk PWA and the API, and owns the database.
//!
//! The binary (`main.rs`) only parses flags; everything it runs is here so tests drive the same
//! router in-process. `sync.rs` is the kiosks' push, `snapshots.rs` their images, `auth.rs` the
//! station tokens both require, `supervisors.rs` supervisor accounts and sessions, `db.rs` the database (SQLite or PostgreSQL), `tls.rs` HTTPS.

mod audit;
pub mod auth;
mod changes;
mod corrections;
pub mod db;
pub mod models;
mod pull;
mod review;
mod settings;
pub mod snapshots;
pub mod supervisors;
mod sync;
pub mod tls;
mod training_set;

use anyhow::{Context, bail};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, OriginalUri, Request, State, rejection::BytesRejection},
    handler::Handler,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodFilter, MethodRouter, any, on},
};
use db::Database;
use serde_json::json;
use snapshots::{LocalSnapshotStore, SnapshotStore};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};
use supervisors::LoginThrottle;
use tower_http::services::{ServeDir, ServeFile};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Uploaded ONNX models, content-addressed like snapshots, in a folder of their own.
    pub models: Arc<dyn SnapshotStore>,
    /// One model validation at a time: each keeps a CPU core busy.
    pub model_validation: Arc<tokio::sync::Semaphore>,
    pub login_throttle: Arc<LoginThrottle>,
    /// Session cookies get `Secure` when the server speaks TLS (set by `main`).
    pub secure_cookies: bool,
}

impl AppState {
    /// The database at `database_url` (by default SQLite in `data_dir`) and the snapshot folder
    /// of `data_dir`, all created if needed.
    pub async fn open(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<AppState> {
        Ok(AppState {
            db: open_database(data_dir, database_url).await?,
            snapshots: Arc::new(LocalSnapshotStore::new(data_dir.join("snapshots"))),
            models: Arc::new(LocalSnapshotStore::new(data_dir.join("models"))),
            model_validation: Arc::new(tokio::sync::Semaphore::new(1)),
            login_throttle: Arc::default(),
            secure_cookies: false,
        })
    }
}

/// Creates `data_dir` and opens the database at `database_url`, or SQLite in `data_dir`.
pub async fn open_database(
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Database> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    match database_url {
        Some(url) => Database::open(url).await,
        None => Database::open(&db::sqlite_url(data_dir)).await,
    }
}

/// Checks that `static_dir` holds a built PWA before the server starts serving it.
pub fn check_static_dir(static_dir: &Path) -> anyhow::Result<()> {
    for file in ["index.html", "sw.js", "manifest.webmanifest"] {
        if !static_dir.join(file).is_file() {
            bail!(
                "{} has no {file}: build the PWA first (`cargo xtask run` does)",
                static_dir.display()
            );
        }
    }
    Ok(())
}

/// One route of the HTTP surface.
pub struct Endpoint {
    pub method: Method,
    /// In axum's syntax, which is OpenAPI's too: `/api/v1/snapshots/{sha256}`.
    pub path: &'static str,
    route: MethodRouter<AppState>,
}

fn endpoint<H: Handler<T, AppState>, T: 'static>(
    method: Method,
    path: &'static str,
    handler: H,
) -> Endpoint {
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Endpoint {
        method,
        path,
        route: on(filter, handler),
    }
}

impl Endpoint {
    fn body_limit(mut self, bytes: usize) -> Endpoint {
        self.route = self.route.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// The body limit of requests that carry a few fields, not records or files.
const SMALL_JSON_BYTES: usize = 16 * 1024;

/// Every route besides the PWA, in one list: the router is built from it, and the OpenAPI test
/// checks `openapi.json` against it, so the description cannot miss or invent a route.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        endpoint(Method::GET, "/healthz", healthz),
        endpoint(Method::POST, "/api/v1/sync/push", sync::push)
            .body_limit(protocol::MAX_PUSH_BYTES),
        endpoint(
            Method::PUT,
            "/api/v1/snapshots/{sha256}",
            snapshots::put_snapshot,
        )
        .body_limit(protocol::MAX_SNAPSHOT_BYTES),
        endpoint(
            Method::GET,
            "/api/v1/snapshots/{sha256}",
            snapshots::get_snapshot,
        ),
        endpoint(Method::POST, "/api/v1/session", supervisors::login).body_limit(SMALL_JSON_BYTES),
        endpoint(Method::GET, "/api/v1/session", supervisors::whoami),
        endpoint(Method::DELETE, "/api/v1/session", supervisors::logout),
        endpoint(Method::POST, "/api/v1/stations", auth::enroll).body_limit(SMALL_JSON_BYTES),
        endpoint(Method::GET, "/api/v1/stations", auth::list),
        endpoint(
            Method::PUT,
            "/api/v1/stations/{station}/assignment",
            settings::assign,
        )
        .body_limit(settings::MAX_ASSIGNMENT_BYTES),
        endpoint(Method::GET, "/api/v1/sync/pull", pull::pull),
        endpoint(Method::POST, "/api/v1/models", models::upload)
            .body_limit(models::MAX_MODEL_BYTES),
        endpoint(Method::GET, "/api/v1/models", models::list),
        endpoint(Method::GET, "/api/v1/models/{id}/file", models::download),
        endpoint(Method::GET, "/api/v1/inspections", review::inspections),
        endpoint(
            Method::GET,
            "/api/v1/inspections.csv",
            review::inspections_csv,
        ),
        endpoint(Method::GET, "/api/v1/stats", review::stats),
        endpoint(
            Method::GET,
            "/api/v1/training-set.zip",
            training_set::training_set,
        ),
        endpoint(
            Method::POST,
            "/api/v1/inspections/{id}/corrections",
            corrections::correct,
        )
        .body_limit(SMALL_JSON_BYTES),
        endpoint(
            Method::GET,
            "/api/v1/inspections/{id}/corrections",
            corrections::list,
        ),
        endpoint(Method::GET, "/api/v1/audit", audit::audit),
    ]
}

/// The whole HTTP surface: `/healthz`, `/api/...`, and the PWA for every other path.
pub fn router(state: AppState, static_dir: PathBuf) -> Router {
    let index = static_dir.join("index.html");
    let mut app = Router::new();
    for Endpoint { path, route, .. } in endpoints() {
        app = app.route(path, route);
    }
    app
        // An unknown API path is a JSON error a kiosk can show, never the app shell.
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        // Unknown paths get the app shell: the kiosk routes on the client.
        .fallback_service(ServeDir::new(static_dir).fallback(ServeFile::new(index)))
        .layer(middleware::from_fn(response_headers))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    let applied: Result<i64, sqlx::Error> =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.db.pool)
            .await;
    match applied {
        Ok(migrations) => Json(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol_version": protocol::PROTOCOL_VERSION,
            "database": state.db.dialect.name(),
            "migrations": migrations,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "error", "reason": format!("database: {e}") })),
        )
            .into_response(),
    }
}

async fn api_not_found(OriginalUri(uri): OriginalUri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no API endpoint {}", uri.path()) })),
    )
        .into_response()
}

/// An API error: the status and `{"error": reason}`, so a kiosk can show why.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
        }
    }

    pub(crate) fn forbidden(reason: String) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, reason)
    }

    pub(crate) fn internal(reason: String) -> Self {
        eprintln!("internal error: {reason}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason)
    }

    pub(crate) fn database(e: sqlx::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.reason }))).into_response()
    }
}

/// A request body parsed as JSON `T`: 413 over the route's body limit, 400 naming what is wrong
/// (syntax, a missing field, a wrong type) otherwise.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let Json(value) = Json::<T>::from_bytes(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(value)
}

/// Runs a request's database work in its own task, to its end even when the client goes away
/// and axum drops the handler: dropped while `BEGIN` is in flight, sqlx would hand the connection
/// back to the pool inside a transaction it does not know about.
pub(crate) async fn run_to_end<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::internal(format!("the request's task failed: {e}")))?
}

/// Lower-case hex, the form every hash and token takes in LineCheck.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A time as stored in `*_at` columns: fixed-width RFC 3339 in UTC, so text order is time order.
pub(crate) fn utc_text(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A `*_at` column read back.
pub(crate) fn parse_utc_text(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&chrono::Utc))
        .map_err(|e| ApiError::internal(format!("a stored time {text:?}: {e}")))
}

pub(crate) fn now_text() -> String {
    utc_text(chrono::Utc::now())
}

/// Caching and isolation headers, on every response of the router (one layer, so no route and
/// no static file can miss them).
///
/// The service worker, the page and the manifest must be revalidated on every load, or a kiosk
/// could keep an old version for a day. Cross-origin isolation (COOP `same-origin` with COEP
/// `require-corp`) gives the page and its detection worker `SharedArrayBuffer`, which the CPU
/// backend's wasm threads need; everything LineCheck loads is same-origin, so it costs nothing.
/// CORP `same-origin` keeps other sites from embedding the kiosk's files and snapshots.
async fn response_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let revalidate = path == "/"
        || path.ends_with(".html")
        || path.ends_with("/sw.js")
        || path.ends_with(".webmanifest")
        || path.starts_with("/api/")
        || path == "/healthz";
    if revalidate {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-embedder-policy",
        HeaderValue::from_static("require-corp"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
