//! Station enrollment by a supervisor over HTTP, on SQLite and PostgreSQL.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use common::{Server, record, sha256_hex};
use database::{Backend, on_both_databases};
use protocol::{EnrolledStation, PROTOCOL_VERSION, PushRequest, StationSummary};
use serde_json::{Value, json};
use uuid::Uuid;

fn error_of(json: &Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {json}"))
}

async fn list(server: &Server, cookie: &str) -> Vec<StationSummary> {
    let (status, json) = server
        .as_supervisor(cookie, Method::GET, "/api/v1/stations", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    serde_json::from_value(json).unwrap()
}

async fn a_supervisor_enrolls_a_station_whose_token_then_pushes(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", "correct horse").await;
    // One station enrolled with the CLI's function, which the list shows too.
    server.enroll("ST-01").await;

    let body = json!({ "station": " ST-04 " }).to_string();
    let (status, json) = server
        .as_supervisor(&cookie, Method::POST, "/api/v1/stations", body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let enrolled: EnrolledStation = serde_json::from_value(json).unwrap();
    assert_eq!(enrolled.station, "ST-04");
    assert_eq!(enrolled.token.len(), 64);
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM station_tokens WHERE token_sha256 = $1")
            .bind(sha256_hex(enrolled.token.as_bytes()))
            .fetch_one(&server.state.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "only the token's hash is stored");

    let before_push = list(&server, &cookie).await;
    let names: Vec<_> = before_push.iter().map(|s| s.station.as_str()).collect();
    assert_eq!(names, ["ST-01", "ST-04"]);
    assert!(before_push.iter().all(|s| s.last_push_at.is_none()));

    let device = Uuid::from_u128(0xD4);
    let push = PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device_id: device,
        records: vec![record(Uuid::from_u128(1), device, "ST-04", 1)],
    };
    let (status, json) = server.push(&enrolled.token, &push).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["results"][0]["status"], "applied", "{json}");

    // A second tablet for the same station gets its own token.
    let body = json!({ "station": "ST-04" }).to_string();
    let (status, json) = server
        .as_supervisor(&cookie, Method::POST, "/api/v1/stations", body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_ne!(json["token"], enrolled.token.as_str());

    let after = list(&server, &cookie).await;
    let st04 = after.iter().find(|s| s.station == "ST-04").unwrap();
    assert_eq!(st04.tokens, 2);
    assert_eq!(st04.enrolled_at, before_push[1].enrolled_at);
    let pushed_at = st04.last_push_at.expect("a push was applied");
    assert!(pushed_at >= st04.enrolled_at);
    assert!(pushed_at <= chrono::Utc::now());
    let st01 = after.iter().find(|s| s.station == "ST-01").unwrap();
    assert_eq!((st01.tokens, st01.last_push_at), (1, None));
}

async fn stations_need_a_supervisor_session_and_valid_input(backend: Backend) {
    let server = Server::start(backend).await;
    let station_token = server.enroll("ST-01").await;
    let body = json!({ "station": "ST-02" }).to_string();
    for path_method in [Method::GET, Method::POST] {
        let (status, json) = server
            .send(
                path_method.clone(),
                "/api/v1/stations",
                Some(&station_token),
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path_method}: {json}");
        assert!(error_of(&json).contains("not logged in"), "{json}");
    }

    let cookie = server.supervisor_session("maria", "correct horse").await;
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"{\"station\": ".to_vec(), StatusCode::BAD_REQUEST, "EOF"),
        (
            br#"{"station": 4}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "station",
        ),
        (br#"{}"#.to_vec(), StatusCode::BAD_REQUEST, "station"),
        (
            br#"{"station": "   "}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "1 to 200 characters",
        ),
        (
            json!({ "station": "S".repeat(201) })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "1 to 200 characters",
        ),
        (
            vec![b' '; 17 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit",
        ),
    ];
    for (body, expected, mentions) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let (status, json) = server
            .as_supervisor(&cookie, Method::POST, "/api/v1/stations", body)
            .await;
        assert_eq!(status, expected, "{shown}: {json}");
        assert!(error_of(&json).contains(mentions), "{shown}: {json}");
    }
    let names: Vec<_> = list(&server, &cookie)
        .await
        .into_iter()
        .map(|s| s.station)
        .collect();
    assert_eq!(names, ["ST-01"], "nothing refused was enrolled");
}

on_both_databases!(
    a_supervisor_enrolls_a_station_whose_token_then_pushes,
    stations_need_a_supervisor_session_and_valid_input,
);
