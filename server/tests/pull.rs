//! Supervisors' changes (station settings, corrections) and the kiosks' pull of them, through
//! the real router on SQLite and PostgreSQL.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use common::{Server, assign, correct, station_with_records};
use database::{Backend, on_both_databases};
use protocol::{
    CorrectionAction, MAX_PULL_CORRECTIONS, PROTOCOL_VERSION, PullResponse, StationSettings,
};
use serde_json::{Value, json};
use std::{collections::HashSet, sync::Arc};
use uuid::Uuid;

const PASSWORD: &str = "correct horse";

fn error_of(json: &Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {json}"))
}

async fn pull(server: &Server, token: &str, since: u64) -> PullResponse {
    let path = format!("/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&since={since}");
    let (status, json) = server.send(Method::GET, &path, Some(token), "").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    serde_json::from_value(json).unwrap()
}

async fn a_station_pulls_its_settings_and_corrections_once_each(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let (st1, ids1) = station_with_records(&server, 1, 3).await;
    let (st2, ids2) = station_with_records(&server, 2, 1).await;

    let nothing = pull(&server, &st1, 0).await;
    assert_eq!(
        nothing,
        PullResponse {
            protocol_version: PROTOCOL_VERSION,
            cursor: 0,
            settings: None,
            corrections: vec![],
            more: false,
        }
    );

    let (status, json) = assign(
        &server,
        &cookie,
        "ST-01",
        json!({ "model_id": null, "default_threshold": 0.4,
                "thresholds": [{ "class_id": 1, "threshold": 0.25 }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let set: StationSettings = serde_json::from_value(json).unwrap();
    assert_eq!(set.default_threshold, 0.4);
    assert_eq!(set.changed_by, "maria");
    assert_eq!(set.model, None);

    let relabel = json!({ "kind": "relabel", "detection": 0, "class_id": 2, "label": "dent" });
    let missed = json!({ "kind": "missed_defect", "class_id": 0, "label": "scratch",
                         "bbox": { "x1": 5.0, "y1": 6.0, "x2": 50.0, "y2": 60.0 } });
    correct(&server, &cookie, ids1[0], relabel.clone()).await;
    correct(
        &server,
        &cookie,
        ids2[0],
        json!({ "kind": "delete", "detection": 0 }),
    )
    .await;
    correct(&server, &cookie, ids1[2], missed.clone()).await;

    let first = pull(&server, &st1, 0).await;
    assert_eq!(first.cursor, 4, "four changes were made");
    assert!(!first.more);
    assert_eq!(first.settings, Some(set));
    let got: Vec<_> = first
        .corrections
        .iter()
        .map(|c| (c.inspection_id, serde_json::to_value(&c.action).unwrap()))
        .collect();
    assert_eq!(got, vec![(ids1[0], relabel), (ids1[2], missed)]);
    assert!(first.corrections.iter().all(|c| c.supervisor == "maria"));

    let again = pull(&server, &st1, first.cursor).await;
    assert_eq!((again.settings, again.corrections.len()), (None, 0));
    assert_eq!(again.cursor, first.cursor);

    let other = pull(&server, &st2, 0).await;
    assert_eq!(other.settings, None, "ST-02's settings were never set");
    assert_eq!(other.corrections.len(), 1);
    assert_eq!(other.corrections[0].inspection_id, ids2[0]);
    assert_eq!(
        other.corrections[0].action,
        CorrectionAction::Delete { detection: 0 }
    );

    // A later change of settings alone.
    let (status, _) = assign(
        &server,
        &cookie,
        "ST-01",
        json!({ "model_id": null, "default_threshold": 0.6, "thresholds": [] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let later = pull(&server, &st1, first.cursor).await;
    assert_eq!(later.cursor, 5);
    assert_eq!(later.settings.unwrap().default_threshold, 0.6);
    assert!(later.corrections.is_empty());

    // The audit trail: who, when, what, for every change.
    let audit: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT change_seq, supervisor, action, subject, details_json FROM audit_log
         ORDER BY change_seq",
    )
    .fetch_all(&server.state.db.pool)
    .await
    .unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|(seq, who, action, subject, _)| {
            (*seq, who.as_str(), action.as_str(), subject.clone())
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            (1, "maria", "assign_station", "ST-01".to_owned()),
            (2, "maria", "correct_inspection", ids1[0].to_string()),
            (3, "maria", "correct_inspection", ids2[0].to_string()),
            (4, "maria", "correct_inspection", ids1[2].to_string()),
            (5, "maria", "assign_station", "ST-01".to_owned()),
        ]
    );
    let details: Value = serde_json::from_str(&audit[4].4).unwrap();
    assert_eq!(details["default_threshold"], 0.6);
}

async fn a_long_backlog_of_corrections_comes_in_pages(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let (token, ids) = station_with_records(&server, 1, 1).await;
    let total = MAX_PULL_CORRECTIONS + 3;
    for _ in 0..total {
        correct(
            &server,
            &cookie,
            ids[0],
            json!({ "kind": "confirm", "detection": 0 }),
        )
        .await;
    }
    let first = pull(&server, &token, 0).await;
    assert!(first.more);
    assert_eq!(first.corrections.len(), MAX_PULL_CORRECTIONS);
    assert_eq!(first.cursor, MAX_PULL_CORRECTIONS as u64);
    let second = pull(&server, &token, first.cursor).await;
    assert!(!second.more);
    assert_eq!(second.corrections.len(), 3);
    assert_eq!(second.cursor, total as u64);
    let ids: HashSet<_> = first
        .corrections
        .iter()
        .chain(&second.corrections)
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), total);
}

/// Supervisors correcting while the kiosk pulls: every correction arrives exactly once, and the
/// change numbers are 1..=N without gaps or repeats.
async fn pulls_during_concurrent_changes_miss_nothing(backend: Backend) {
    let server = Arc::new(Server::start(backend).await);
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let (token, ids) = station_with_records(&server, 1, 4).await;
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let puller = {
        let (server, token, done) = (server.clone(), token.clone(), writers_done.clone());
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = vec![];
            loop {
                // Read before pulling: after the writers finished, one more pull gets the rest.
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let response = pull(&server, &token, cursor).await;
                seen.extend(response.corrections.into_iter().map(|c| c.id));
                cursor = response.cursor;
                if finished && !response.more {
                    return seen;
                }
            }
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (server, cookie, ids) = (server.clone(), cookie.clone(), ids.clone());
        writers.spawn(async move {
            let mut made = vec![];
            for i in 0..15 {
                let target = ids[(writer + i) % ids.len()];
                let json = correct(
                    &server,
                    &cookie,
                    target,
                    json!({ "kind": "confirm", "detection": 0 }),
                )
                .await;
                made.push(json["id"].as_str().unwrap().parse::<Uuid>().unwrap());
                if i % 5 == 0 {
                    let body =
                        json!({ "model_id": null, "default_threshold": 0.5, "thresholds": [] });
                    let (status, json) = assign(&server, &cookie, "ST-01", body).await;
                    assert_eq!(status, StatusCode::OK, "{json}");
                }
            }
            made
        });
    }
    let mut made = HashSet::new();
    while let Some(ids) = writers.join_next().await {
        made.extend(ids.unwrap());
    }
    writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = puller.await.unwrap();
    assert_eq!(
        seen.len(),
        made.len(),
        "each correction pulled exactly once"
    );
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), made);

    let numbers: Vec<i64> =
        sqlx::query_scalar("SELECT change_seq FROM audit_log ORDER BY change_seq")
            .fetch_all(&server.state.db.pool)
            .await
            .unwrap();
    let changes = 4 * 15 + 4 * 3;
    assert_eq!(numbers, (1..=changes).collect::<Vec<i64>>());
}

async fn pull_refuses_bad_tokens_versions_and_cursors(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = station_with_records(&server, 1, 1).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let get = |path: String, token: Option<String>| {
        let server = &server;
        async move { server.send(Method::GET, &path, token.as_deref(), "").await }
    };
    let v = PROTOCOL_VERSION;
    let cases = [
        (
            format!("/api/v1/sync/pull?protocol_version={v}"),
            None,
            StatusCode::UNAUTHORIZED,
            "missing Authorization",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={v}"),
            Some("f".repeat(64)),
            StatusCode::UNAUTHORIZED,
            "unknown station token",
        ),
        (
            "/api/v1/sync/pull?since=0".to_owned(),
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
            "protocol_version",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={}", v + 1),
            Some(token.clone()),
            StatusCode::CONFLICT,
            "update the kiosk",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={v}&since=abc"),
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={v}&since=-1"),
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={v}&since=7"),
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
            "ahead of this server",
        ),
        (
            format!("/api/v1/sync/pull?protocol_version={v}&since={}", u64::MAX),
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
            "larger than",
        ),
    ];
    for (path, token, expected, mentions) in cases {
        let (status, json) = get(path.clone(), token).await;
        assert_eq!(status, expected, "{path}: {json}");
        assert!(error_of(&json).contains(mentions), "{path}: {json}");
    }
    // A supervisor's session is not a station token.
    let (status, _, _) = server
        .request(
            Method::GET,
            &format!("/api/v1/sync/pull?protocol_version={v}"),
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn assignment_and_corrections_refuse_bad_input_with_the_reason(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, ids) = station_with_records(&server, 1, 1).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let ok = json!({ "model_id": null, "default_threshold": 0.5, "thresholds": [] });
    let assignment_cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("ST-99", ok.to_string(), StatusCode::NOT_FOUND, "not enrolled"),
        ("ST-01", json!({ "model_id": "nope@1", "default_threshold": 0.5, "thresholds": [] }).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "upload it first"),
        ("ST-01", json!({ "model_id": null, "default_threshold": 1.5, "thresholds": [] }).to_string(), StatusCode::BAD_REQUEST, "default_threshold"),
        ("ST-01", json!({ "model_id": null, "default_threshold": 0.5, "thresholds": [{ "class_id": 1, "threshold": 0.2 }, { "class_id": 1, "threshold": 0.3 }] }).to_string(), StatusCode::BAD_REQUEST, "thresholds[1].class_id"),
        ("ST-01", json!({ "model_id": null, "default_threshold": "high", "thresholds": [] }).to_string(), StatusCode::BAD_REQUEST, "default_threshold"),
        ("ST-01", "{\"model_id\": ".to_owned(), StatusCode::BAD_REQUEST, "EOF"),
        ("ST-01", " ".repeat(129 * 1024), StatusCode::PAYLOAD_TOO_LARGE, "length limit"),
    ];
    for (station, body, expected, mentions) in assignment_cases {
        let path = format!("/api/v1/stations/{station}/assignment");
        let (status, json) = server
            .as_supervisor(&cookie, Method::PUT, &path, body)
            .await;
        assert_eq!(status, expected, "{station}: {json}");
        assert!(error_of(&json).contains(mentions), "{station}: {json}");
    }
    let (status, _) = server
        .send(
            Method::PUT,
            "/api/v1/stations/ST-01/assignment",
            Some(&token),
            ok.to_string(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a station token cannot change settings"
    );

    let id = ids[0];
    let correction_cases: Vec<(String, String, StatusCode, &str)> = vec![
        ("not-a-uuid".into(), json!({ "kind": "confirm", "detection": 0 }).to_string(), StatusCode::BAD_REQUEST, "not an inspection id"),
        (Uuid::from_u128(77).to_string(), json!({ "kind": "confirm", "detection": 0 }).to_string(), StatusCode::NOT_FOUND, "no inspection"),
        (id.to_string(), json!({ "kind": "delete", "detection": 1 }).to_string(), StatusCode::BAD_REQUEST, "no detection 1"),
        (id.to_string(), json!({ "kind": "relabel", "detection": 0, "class_id": 1, "label": " " }).to_string(), StatusCode::BAD_REQUEST, "label"),
        (id.to_string(), json!({ "kind": "missed_defect", "class_id": 1, "label": "dent", "bbox": { "x1": 9.0, "y1": 0.0, "x2": 1.0, "y2": 5.0 } }).to_string(), StatusCode::BAD_REQUEST, "bbox"),
        (id.to_string(), json!({ "kind": "praise" }).to_string(), StatusCode::BAD_REQUEST, "unknown variant"),
        (id.to_string(), json!({ "kind": "confirm", "detection": "first" }).to_string(), StatusCode::BAD_REQUEST, "expected u32"),
        (id.to_string(), " ".repeat(17 * 1024), StatusCode::PAYLOAD_TOO_LARGE, "length limit"),
    ];
    for (inspection, body, expected, mentions) in correction_cases {
        let path = format!("/api/v1/inspections/{inspection}/corrections");
        let (status, json) = server
            .as_supervisor(&cookie, Method::POST, &path, body)
            .await;
        assert_eq!(status, expected, "{inspection}: {json}");
        assert!(error_of(&json).contains(mentions), "{inspection}: {json}");
    }
    let path = format!("/api/v1/inspections/{id}/corrections");
    let body = json!({ "kind": "confirm", "detection": 0 }).to_string();
    let (status, _) = server.send(Method::POST, &path, Some(&token), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nothing refused was stored or numbered.
    let changes: i64 = sqlx::query_scalar("SELECT value FROM change_counter")
        .fetch_one(&server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(changes, 0);
    assert_eq!(pull(&server, &token, 0).await.cursor, 0);
}

on_both_databases!(
    a_station_pulls_its_settings_and_corrections_once_each,
    a_long_backlog_of_corrections_comes_in_pages,
    pulls_during_concurrent_changes_miss_nothing,
    pull_refuses_bad_tokens_versions_and_cursors,
    assignment_and_corrections_refuse_bad_input_with_the_reason,
);
