//! The real router on a real SQLite file (and PostgreSQL database), driven in-process.

mod database;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use database::{Backend, on_both_databases};
use http_body_util::BodyExt;
use linecheck_server::{AppState, check_static_dir, open_database, router};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    static_dir: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    database_url: Option<String>,
    app: axum::Router,
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let static_dir = dir.path().join("dist");
    std::fs::create_dir_all(&static_dir).unwrap();
    std::fs::write(static_dir.join("index.html"), "<html>app shell</html>").unwrap();
    std::fs::write(
        static_dir.join("sw.js"),
        "self.addEventListener('fetch', () => {});",
    )
    .unwrap();
    std::fs::write(static_dir.join("manifest.webmanifest"), "{}").unwrap();
    check_static_dir(&static_dir).unwrap();
    let data_dir = dir.path().join("data");
    let database_url = backend.fresh_url().await;
    let state = AppState::open(&data_dir, database_url.as_deref())
        .await
        .unwrap();
    Fixture {
        app: router(state, static_dir.clone()),
        static_dir,
        data_dir,
        database_url,
        _dir: dir,
    }
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn healthz_reports_the_migrated_database(backend: Backend) {
    let f = fixture(backend).await;
    let (status, _, body) = get(&f.app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(json["database"], name);
    // Every file in migrations/ applied.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(json["migrations"], files);
    // SQLite only when no database URL was given.
    assert_eq!(
        f.data_dir.join("linecheck.db").is_file(),
        backend == Backend::Sqlite
    );
}

async fn reopening_the_database_keeps_its_rows_and_schema(backend: Backend) {
    let f = fixture(backend).await;
    let db = open_database(&f.data_dir, f.database_url.as_deref())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO inspections (id, device_id, sequence, inspected_at, local_time, station, line,
         operator, part_serial, lot, model_id, model_version, verdict, record_json, received_at)
         VALUES ('r1', 'd1', 1, 't', 't', 's', 'l', 'o', '', '', 'm', '1', 'pass', '{}', 't')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db.close().await;
    let reopened = open_database(&f.data_dir, f.database_url.as_deref())
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inspections")
        .fetch_one(&reopened.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_app_shell_and_service_worker_are_revalidated_on_every_load() {
    let f = fixture(Backend::Sqlite).await;
    for path in ["/", "/sw.js"] {
        let (status, headers, _) = get(&f.app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
    }
    let (_, headers, _) = get(&f.app, "/sw.js").await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
}

/// The kiosk is cross-origin isolated (its CPU backend's wasm threads need `SharedArrayBuffer`)
/// only if the page, its scripts, its wasm, the detection worker's files and everything they
/// load carry COOP and COEP: files of the build, client routes, API answers and errors alike.
#[tokio::test]
async fn every_response_carries_the_cross_origin_isolation_headers() {
    let f = fixture(Backend::Sqlite).await;
    let dist = &f.static_dir;
    std::fs::create_dir_all(dist.join("icons")).unwrap();
    for file in [
        "linecheck-frontend-0a1b2c_bg.wasm",
        "linecheck-frontend-0a1b2c.js",
        "detection-worker-3d4e5f_bg.wasm",
        "detection-worker-3d4e5f.js",
        "detection-worker-3d4e5f_loader.js",
        "linecheck-defects-320-fp16.onnx",
        "icons/icon-192.png",
    ] {
        std::fs::write(dist.join(file), b"\0asm").unwrap();
    }
    for path in [
        "/",
        "/index.html",
        "/history",
        "/sw.js",
        "/manifest.webmanifest",
        "/linecheck-frontend-0a1b2c_bg.wasm",
        "/linecheck-frontend-0a1b2c.js",
        "/detection-worker-3d4e5f_bg.wasm",
        "/detection-worker-3d4e5f.js",
        "/detection-worker-3d4e5f_loader.js",
        "/linecheck-defects-320-fp16.onnx",
        "/icons/icon-192.png",
        "/healthz",
        "/api/v1/session",
        "/api/v1/inspections",
        "/api/v1/snapshots/00",
        "/api/v1/nothing",
    ] {
        let (status, headers, _) = get(&f.app, path).await;
        assert!(status.as_u16() < 500, "{path}: {status}");
        for (name, value) in [
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-embedder-policy", "require-corp"),
            ("cross-origin-resource-policy", "same-origin"),
        ] {
            assert_eq!(
                headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name} on {path} ({status})"
            );
        }
    }
    // Streaming compilation (`WebAssembly.instantiateStreaming`) needs the wasm's own type.
    let (status, headers, body) = get(&f.app, "/detection-worker-3d4e5f_bg.wasm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "\0asm");
    assert_eq!(headers["content-type"], "application/wasm");
}

#[tokio::test]
async fn client_routes_get_the_app_shell_but_unknown_api_paths_get_json_404() {
    let f = fixture(Backend::Sqlite).await;
    let (status, _, body) = get(&f.app, "/history").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "<html>app shell</html>");
    let (status, _, body) = get(&f.app, "/api/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no API endpoint /api/v1/nothing"), "{body}");
}

#[test]
fn a_missing_build_is_named_before_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let err = check_static_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("has no index.html"), "{err}");
    assert!(err.contains("cargo xtask run"), "{err}");
}

on_both_databases!(
    healthz_reports_the_migrated_database,
    reopening_the_database_keeps_its_rows_and_schema,
);
