//! (Each test crate uses part of this module.)
#![allow(dead_code)]
//! What the sync tests share: a real server in-process on a real data directory and database,
//! and records.

use crate::database::Backend;
use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use http_body_util::BodyExt;
use linecheck_server::{AppState, auth::enroll_station, router, supervisors::add_supervisor};
use protocol::{
    BoundingBox, ClassThreshold, Detection, InspectionRecord, ModelRef, OperatorDecision,
    PROTOCOL_VERSION, PushRequest, SnapshotRef, verdict_for,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tower::ServiceExt;
use uuid::Uuid;

pub struct Server {
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    static_dir: PathBuf,
    pub state: AppState,
    pub app: axum::Router,
}

impl Server {
    /// A server on a new, empty database of `backend`.
    pub async fn start(backend: Backend) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let static_dir = dir.path().join("dist");
        std::fs::create_dir_all(&static_dir).unwrap();
        let data_dir = dir.path().join("data");
        let database_url = backend.fresh_url().await;
        let state = AppState::open(&data_dir, database_url.as_deref())
            .await
            .unwrap();
        Server {
            app: router(state.clone(), static_dir.clone()),
            state,
            static_dir,
            data_dir,
            database_url,
            _dir: dir,
        }
    }

    /// A process restart: the database closed, everything reopened from the same place.
    pub async fn restart(&mut self) {
        self.state.db.close().await;
        self.state = AppState::open(&self.data_dir, self.database_url.as_deref())
            .await
            .unwrap();
        self.app = router(self.state.clone(), self.static_dir.clone());
    }

    /// As `main` runs it behind TLS: session cookies marked `Secure`.
    pub fn use_secure_cookies(&mut self) {
        self.state.secure_cookies = true;
        self.app = router(self.state.clone(), self.static_dir.clone());
    }

    pub async fn enroll(&self, station: &str) -> String {
        enroll_station(&self.state.db.pool, station).await.unwrap()
    }

    /// Sends one request through the whole router; the body as JSON (`Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let (status, _, json) = self.request(method, path, &headers, body).await;
        (status, json)
    }

    /// Sends one JSON request with `headers`; the response's headers and body as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = self.raw_request(method, path, headers, body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, headers, json)
    }

    /// Sends one request with `headers` (JSON unless they name another content type).
    pub async fn raw_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> axum::response::Response {
        let mut request = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(name, _)| *name == "content-type") {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.app
            .clone()
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap()
    }

    /// A supervisor account `name` with `password`, logged in: the `cookie` header value.
    pub async fn supervisor_session(&self, name: &str, password: &str) -> String {
        add_supervisor(&self.state.db.pool, name, password, false)
            .await
            .unwrap();
        self.login(name, password)
            .await
            .expect("the new supervisor logs in")
    }

    /// Logs in; the `cookie` header value of the session, or the refusal.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
    ) -> Result<String, (StatusCode, serde_json::Value)> {
        let body = serde_json::json!({ "name": name, "password": password }).to_string();
        let (status, headers, json) = self
            .request(Method::POST, "/api/v1/session", &[], body)
            .await;
        if status != StatusCode::OK {
            return Err((status, json));
        }
        let set_cookie = headers["set-cookie"].to_str().unwrap();
        Ok(set_cookie.split(';').next().unwrap().to_owned())
    }

    /// Sends a JSON request as the supervisor of `cookie`.
    pub async fn as_supervisor(
        &self,
        cookie: &str,
        method: Method,
        path: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let (status, _, json) = self
            .request(method, path, &[("cookie", cookie)], body)
            .await;
        (status, json)
    }

    pub async fn push(
        &self,
        token: &str,
        body: &impl serde::Serialize,
    ) -> (StatusCode, serde_json::Value) {
        let body = serde_json::to_vec(body).unwrap();
        self.send(Method::POST, "/api/v1/sync/push", Some(token), body)
            .await
    }

    pub async fn put_snapshot(&self, token: &str, jpeg: &[u8]) -> StatusCode {
        let path = format!("/api/v1/snapshots/{}", sha256_hex(jpeg));
        self.send(Method::PUT, &path, Some(token), jpeg.to_vec())
            .await
            .0
    }

    /// The records stored for `device`, by sequence.
    pub async fn stored_records(&self, device: Uuid) -> Vec<InspectionRecord> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT record_json FROM inspections WHERE device_id = $1 ORDER BY sequence",
        )
        .bind(device.to_string())
        .fetch_all(&self.state.db.pool)
        .await
        .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that pass for a JPEG: the start-of-image marker, then `seed`-dependent content.
pub fn jpeg(seed: u64) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend_from_slice(&seed.to_le_bytes());
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

/// A valid record; its content varies with `sequence`.
pub fn record(id: Uuid, device: Uuid, station: &str, sequence: u64) -> InspectionRecord {
    let n = sequence;
    let inspected_at: DateTime<Utc> = Utc.timestamp_opt(1_790_000_000 + n as i64 * 7, 0).unwrap();
    let detections = vec![Detection {
        class_id: (n % 3) as u32,
        label: format!("defect-{}", n % 3),
        score: (n % 100) as f32 / 100.0,
        bbox: BoundingBox {
            x1: 1.0,
            y1: 2.0,
            x2: 30.5,
            y2: 40.25,
        },
    }];
    let thresholds = vec![ClassThreshold {
        class_id: 1,
        threshold: 0.3,
    }];
    InspectionRecord {
        id,
        device_id: device,
        sequence,
        inspected_at,
        local_time: inspected_at.with_timezone(&FixedOffset::east_opt(3600).unwrap()),
        station: station.into(),
        line: "Line 2".into(),
        operator: "badge-1182".into(),
        part_serial: format!("SN-{n:06}"),
        lot: "LOT-77".into(),
        model: ModelRef {
            id: "linecheck-defects".into(),
            version: "1".into(),
        },
        verdict: verdict_for(&detections, &thresholds, 0.5),
        default_threshold: 0.5,
        thresholds,
        detections,
        decision: OperatorDecision::Confirmed,
        snapshot: None,
    }
}

pub fn with_snapshot(mut record: InspectionRecord, jpeg: &[u8]) -> InspectionRecord {
    record.snapshot = Some(SnapshotRef {
        sha256: sha256_hex(jpeg),
        byte_len: jpeg.len() as u64,
    });
    record
}

/// A station `ST-{number}` with `count` pushed records (ids `station_number << 32 | sequence`).
pub async fn station_with_records(
    server: &Server,
    number: u128,
    count: u64,
) -> (String, Vec<Uuid>) {
    let station = format!("ST-{number:02}");
    let token = server.enroll(&station).await;
    let device = Uuid::from_u128(0xD000 + number);
    let records: Vec<_> = (1..=count)
        .map(|seq| {
            record(
                Uuid::from_u128(number << 32 | seq as u128),
                device,
                &station,
                seq,
            )
        })
        .collect();
    let ids = records.iter().map(|r| r.id).collect();
    let push = PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device_id: device,
        records,
    };
    let (status, json) = server.push(&token, &push).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    (token, ids)
}

pub async fn correct(server: &Server, cookie: &str, inspection: Uuid, action: Value) -> Value {
    let path = format!("/api/v1/inspections/{inspection}/corrections");
    let (status, json) = server
        .as_supervisor(cookie, Method::POST, &path, action.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    json
}

pub async fn assign(
    server: &Server,
    cookie: &str,
    station: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!("/api/v1/stations/{station}/assignment");
    server
        .as_supervisor(cookie, Method::PUT, &path, body.to_string())
        .await
}
