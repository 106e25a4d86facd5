//! Model upload (validated by running it with the native engine), listing, assignment to a
//! station and download by its kiosk, on SQLite and PostgreSQL.

mod common;
mod database;

use axum::{
    body::{Body, Bytes},
    http::{Method, StatusCode},
};
use common::{Server, sha256_hex};
use database::{Backend, on_both_databases};
use linecheck_server::models::MAX_MODEL_BYTES;
use protocol::{ModelSummary, PROTOCOL_VERSION, PullResponse};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../vision-engine/tests/fixtures/detector/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn error_of(json: &Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {json}"))
}

async fn upload(
    server: &Server,
    cookie: &str,
    query: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let (status, _, json) = server
        .request(
            Method::POST,
            &format!("/api/v1/models{query}"),
            &[
                ("cookie", cookie),
                ("content-type", "application/octet-stream"),
            ],
            body,
        )
        .await;
    (status, json)
}

/// The files in the model store.
fn stored_models(server: &Server) -> usize {
    let root = server.data_dir.join("models");
    std::fs::read_dir(&root)
        .map(|dirs| {
            dirs.map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
                .sum()
        })
        .unwrap_or(0)
}

async fn a_model_is_validated_stored_assigned_pulled_and_downloaded(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let station_token = server.enroll("ST-01").await;
    let onnx = fixture("mini_detector.onnx");

    let (status, json) = upload(&server, &cookie, "?name=mini&version=2", onnx.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let uploaded: ModelSummary = serde_json::from_value(json).unwrap();
    let detector = vision_engine::Detector::from_onnx_bytes(&onnx).unwrap();
    assert_eq!(uploaded.id, "mini@2");
    assert_eq!(uploaded.sha256, sha256_hex(&onnx));
    assert_eq!(uploaded.byte_len, onnx.len() as u64);
    assert_eq!(uploaded.classes, detector.labels());
    assert_eq!(uploaded.uploaded_by, "maria");
    assert_eq!(stored_models(&server), 1);

    let (status, json) = server
        .as_supervisor(&cookie, Method::GET, "/api/v1/models", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        serde_json::from_value::<Vec<ModelSummary>>(json).unwrap(),
        vec![uploaded.clone()]
    );

    let body = json!({ "model_id": "mini@2", "default_threshold": 0.45,
                       "thresholds": [{ "class_id": 0, "threshold": 0.3 }] });
    let (status, json) = server
        .as_supervisor(
            &cookie,
            Method::PUT,
            "/api/v1/stations/ST-01/assignment",
            body.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let path = format!("/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&since=0");
    let (status, json) = server
        .send(Method::GET, &path, Some(&station_token), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let pulled: PullResponse = serde_json::from_value(json).unwrap();
    let model = pulled.settings.unwrap().model.expect("a model is assigned");
    assert_eq!(
        (
            model.id.as_str(),
            model.name.as_str(),
            model.version.as_str()
        ),
        ("mini@2", "mini", "2")
    );
    assert_eq!(model.sha256, uploaded.sha256);
    assert_eq!(model.byte_len, uploaded.byte_len);
    assert_eq!(model.download_url, "/api/v1/models/mini@2/file");

    let download = |if_none_match: Option<String>| {
        let (server, token, url) = (&server, &station_token, model.download_url.clone());
        async move {
            let bearer = format!("Bearer {token}");
            let mut headers = vec![("authorization", bearer.as_str())];
            let tag;
            if let Some(value) = if_none_match {
                tag = value;
                headers.push(("if-none-match", tag.as_str()));
            }
            let response = server.raw_request(Method::GET, &url, &headers, "").await;
            let status = response.status();
            let etag = response.headers().get("etag").cloned();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, etag, bytes)
        }
    };
    let (status, etag, bytes) = download(None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, Bytes::from(onnx.clone()));
    let etag = etag.unwrap().to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", uploaded.sha256));
    let (status, _, bytes) = download(Some(etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(bytes.is_empty());
    let (status, _, _) = download(Some("\"other\"".into())).await;
    assert_eq!(status, StatusCode::OK);

    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT supervisor, action, subject FROM audit_log ORDER BY change_seq")
            .fetch_all(&server.state.db.pool)
            .await
            .unwrap();
    let expected = [("upload_model", "mini@2"), ("assign_station", "ST-01")];
    assert_eq!(
        audit,
        expected.map(|(a, s)| ("maria".to_owned(), a.to_owned(), s.to_owned()))
    );
}

async fn broken_and_unsupported_models_are_refused_with_the_engines_reason(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let good = fixture("mini_detector.onnx");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an op the engine lacks",
            fixture("unsupported_op.onnx"),
            "Einsum",
        ),
        (
            "not ONNX at all",
            b"this is a text file".to_vec(),
            "cannot be loaded",
        ),
        (
            "a truncated file",
            good[..good.len() / 2].to_vec(),
            "cannot be loaded",
        ),
        ("an empty body", vec![], "cannot be loaded"),
    ];
    for (what, body, mentions) in cases {
        let (status, json) = upload(&server, &cookie, "?name=m&version=1", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {json}");
        assert!(error_of(&json).contains(mentions), "{what}: {json}");
    }
    assert_eq!(stored_models(&server), 0, "nothing refused is stored");
    let (_, json) = server
        .as_supervisor(&cookie, Method::GET, "/api/v1/models", "")
        .await;
    assert_eq!(json, json!([]));
    let changes: i64 = sqlx::query_scalar("SELECT value FROM change_counter")
        .fetch_one(&server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(changes, 0);
}

async fn model_endpoints_refuse_bad_names_repeats_strangers_and_oversized_bodies(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let station_token = server.enroll("ST-01").await;
    let onnx = fixture("mini_detector.onnx");
    let cases = [
        ("", "name"),
        ("?name=mini", "version"),
        ("?name=mini%2F..&version=1", "must be 1 to 64 letters"),
        ("?name=mini&version=", "must be 1 to 64 letters"),
    ];
    for (query, mentions) in cases {
        let (status, json) = upload(&server, &cookie, query, onnx.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {json}");
        assert!(error_of(&json).contains(mentions), "{query}: {json}");
    }
    let (status, json) = upload(&server, &cookie, "?name=mini&version=1", onnx.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let (status, json) = upload(&server, &cookie, "?name=mini&version=1", onnx.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert!(error_of(&json).contains("new version"), "{json}");

    // A station token can download but not upload or list; no credentials, nothing.
    let (status, json) = server
        .send(
            Method::POST,
            "/api/v1/models?name=x&version=1",
            Some(&station_token),
            onnx.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, _) = server
        .send(Method::GET, "/api/v1/models", Some(&station_token), "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(Method::GET, "/api/v1/models/mini@1/file", None, "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, json) = server
        .send(
            Method::GET,
            "/api/v1/models/nope@1/file",
            Some(&station_token),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&json).contains("no model"), "{json}");

    // Streamed, so the test does not hold the oversized body in memory either.
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    let chunks = MAX_MODEL_BYTES / chunk.len() + 1;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let (status, json) = upload(
        &server,
        &cookie,
        "?name=huge&version=1",
        Body::from_stream(stream),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert!(error_of(&json).contains("length limit"), "{json}");
}

on_both_databases!(
    a_model_is_validated_stored_assigned_pulled_and_downloaded,
    broken_and_unsupported_models_are_refused_with_the_engines_reason,
    model_endpoints_refuse_bad_names_repeats_strangers_and_oversized_bodies,
);
