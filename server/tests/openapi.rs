//! `openapi.json` against the real router: the same routes, statuses it documents, examples that
//! the server accepts.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use linecheck_server::{
    AppState, auth::enroll_station, endpoints, router, supervisors::add_supervisor,
};
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt;

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn openapi() -> Value {
    serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON")
}

/// Every documented operation: method, path, and the operation object.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut operations = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.clone(), operation.clone()));
        }
    }
    operations
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let documented: BTreeSet<(String, String)> = operations(&openapi())
        .into_iter()
        .map(|(method, path, _)| (method.to_string(), path))
        .collect();
    let routed: BTreeSet<(String, String)> = endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

/// `path` with each `{name}` replaced by its parameter's example, and the query parameters'
/// examples appended.
fn example_path(path: &str, operation: &Value) -> String {
    let mut path = path.to_owned();
    let mut query = vec![];
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str().unwrap();
        let example = parameter["example"]
            .as_str()
            .unwrap_or_else(|| panic!("parameter {name} has no example"));
        match parameter["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), example),
            Some("query") => query.push(format!(
                "{name}={}",
                url::form_urlencoded::byte_serialize(example.as_bytes()).collect::<String>()
            )),
            other => panic!("parameter {name} is in {other:?}"),
        }
    }
    assert!(!path.contains('{'), "{path}: a parameter without example");
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    path
}

#[tokio::test]
async fn documented_operations_answer_documented_statuses_and_accept_their_examples() {
    let dir = tempfile::tempdir().unwrap();
    let static_dir = dir.path().join("dist");
    std::fs::create_dir_all(&static_dir).unwrap();
    std::fs::write(static_dir.join("index.html"), "<html>app shell</html>").unwrap();
    let state = AppState::open(&dir.path().join("data"), None)
        .await
        .unwrap();
    let app = router(state.clone(), static_dir);
    let doc = openapi();
    // The push example's records are of one station: its token is the one that may push them.
    let push_example = &doc["paths"]["/api/v1/sync/push"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    let station = push_example["records"][0]["station"].as_str().unwrap();
    let token = enroll_station(&state.db.pool, station).await.unwrap();
    // Stored before the loop, so operations on the example's inspection find it; the loop's
    // push then repeats it.
    let pushed = app
        .clone()
        .oneshot(
            Request::post("/api/v1/sync/push")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(push_example.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
    let pushed: Value =
        serde_json::from_slice(&pushed.into_body().collect().await.unwrap().to_bytes()).unwrap();
    for result in pushed["results"].as_array().unwrap() {
        assert_eq!(result["status"], "applied", "{pushed}");
    }
    // The login example's supervisor exists, and each operation that needs a session gets a new
    // one (the logout example would end a shared one).
    let login = &doc["paths"]["/api/v1/session"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    let supervisor = (
        login["name"].as_str().unwrap(),
        login["password"].as_str().unwrap(),
    );
    add_supervisor(&state.db.pool, supervisor.0, supervisor.1, false)
        .await
        .unwrap();
    let session_cookie = || async {
        let response = app
            .clone()
            .oneshot(
                Request::post("/api/v1/session")
                    .header("content-type", "application/json")
                    .body(Body::from(login.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the login example logs in"
        );
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    };

    for (method, path, operation) in operations(&doc) {
        let uri = example_path(&path, &operation);
        let mut request = Request::builder().method(method.clone()).uri(&uri);
        for scheme in operation["security"].as_array().into_iter().flatten() {
            let scheme = scheme.as_object().unwrap().keys().next().unwrap();
            request = match scheme.as_str() {
                "stationToken" => request.header("authorization", format!("Bearer {token}")),
                "supervisorSession" => request.header("cookie", session_cookie().await),
                other => panic!("{method} {path}: no test credentials for {other}"),
            };
        }
        let content = operation["requestBody"]["content"].as_object();
        let (body, json_example) = match content.and_then(|c| c.iter().next()) {
            None => (Body::empty(), None),
            Some((media_type, media)) => {
                request = request.header("content-type", media_type);
                match media_type.as_str() {
                    "application/json" => {
                        let example = media["example"].clone();
                        assert!(!example.is_null(), "{method} {path}: no example body");
                        (
                            Body::from(serde_json::to_vec(&example).unwrap()),
                            Some(example),
                        )
                    }
                    // Bytes that pass for a JPEG; the path's example hash is of other bytes.
                    "image/jpeg" => (Body::from(vec![0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xD9]), None),
                    "application/octet-stream" if path == "/api/v1/models" => (
                        Body::from(
                            std::fs::read(concat!(
                                env!("CARGO_MANIFEST_DIR"),
                                "/../vision-engine/tests/fixtures/detector/mini_detector.onnx"
                            ))
                            .unwrap(),
                        ),
                        None,
                    ),
                    other => panic!("{method} {path}: no test body for {other}"),
                }
            }
        };
        let response = app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let context = format!("{method} {uri}: {status} {text}");
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
            "{context}"
        );
        assert!(
            operation["responses"].get(status.as_str()).is_some(),
            "{context}: status not documented"
        );
        if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty(), "{context}");
            continue;
        }
        if path == "/api/v1/inspections" {
            // The filter examples all describe the push example's record.
            let ids: Vec<_> = json_of(&bytes)["records"]
                .as_array()
                .expect(&context)
                .iter()
                .map(|r| r["id"].clone())
                .collect();
            assert_eq!(
                ids,
                vec![push_example["records"][0]["id"].clone()],
                "{context}"
            );
        }
        if path == "/api/v1/inspections.csv" {
            assert_eq!(status, StatusCode::OK, "{method} {uri}: {status}");
            assert!(bytes.starts_with(b"id,inspected_at,"), "{context}");
            continue;
        }
        if path == "/api/v1/training-set.zip" {
            assert_eq!(status, StatusCode::OK, "{method} {uri}: {status}");
            assert!(bytes.starts_with(b"PK"), "{context}: not a zip");
            continue;
        }
        if path == "/api/v1/models/{id}/file" {
            // Uploaded by the POST example, which runs first (paths in order).
            assert_eq!(status, StatusCode::OK, "{method} {uri}: {status}");
            continue;
        }
        let json: Value = serde_json::from_slice(&bytes).expect(&context);
        if status.is_client_error() || status.is_server_error() {
            assert!(json["error"].is_string(), "{context}: not the error shape");
        }
        if let Some(example) = json_example {
            assert!(status.is_success(), "{context}: the example is refused");
            if path == "/api/v1/sync/push" {
                let records = example["records"].as_array().unwrap();
                let results = json["results"].as_array().unwrap();
                assert_eq!(results.len(), records.len(), "{context}");
                for result in results {
                    assert_eq!(result["status"], "already_applied", "{context}");
                }
            }
        }
    }
}
