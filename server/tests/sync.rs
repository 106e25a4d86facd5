//! The sync endpoints through the real router on a real SQLite file and a real PostgreSQL
//! database: what they store, and how they refuse what they must not.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use common::{Server, jpeg, record, sha256_hex, with_snapshot};
use database::{Backend, on_both_databases};
use protocol::{
    InspectionRecord, MAX_PUSH_BYTES, MAX_SNAPSHOT_BYTES, PROTOCOL_VERSION, PushRequest,
    PushResponse, PushStatus, Verdict,
};
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

const DEVICE: Uuid = Uuid::from_u128(0xD1);

fn push_of(records: Vec<InspectionRecord>) -> PushRequest {
    PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device_id: DEVICE,
        records,
    }
}

fn statuses(json: Value) -> Vec<PushStatus> {
    let response: PushResponse = serde_json::from_value(json).unwrap();
    response.results.into_iter().map(|r| r.status).collect()
}

fn error_of(json: &Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {json}"))
}

async fn highest_sequence(server: &Server, device: Uuid) -> Option<i64> {
    sqlx::query_scalar("SELECT highest_sequence FROM device_cursors WHERE device_id = $1")
        .bind(device.to_string())
        .fetch_optional(&server.state.db.pool)
        .await
        .unwrap()
}

async fn pushed_records_are_stored_once_and_repeats_answer_already_applied(backend: Backend) {
    let mut server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let records: Vec<_> = (1..=3)
        .map(|seq| record(Uuid::from_u128(seq.into()), DEVICE, "ST-04", seq))
        .collect();

    let (status, json) = server.push(&token, &push_of(records.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(statuses(json), vec![PushStatus::Applied; 3]);

    // After a restart, repeated, reordered and mixed with a new record: only the new one applies.
    server.restart().await;
    let new = record(Uuid::from_u128(4), DEVICE, "ST-04", 4);
    let again = vec![records[2].clone(), new.clone(), records[0].clone()];
    let (status, json) = server.push(&token, &push_of(again)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        statuses(json),
        vec![
            PushStatus::AlreadyApplied,
            PushStatus::Applied,
            PushStatus::AlreadyApplied
        ]
    );

    let mut expected = records;
    expected.push(new);
    assert_eq!(server.stored_records(DEVICE).await, expected);
    assert_eq!(highest_sequence(&server, DEVICE).await, Some(4));
    let (verdict, station, inspected_at): (String, String, String) =
        sqlx::query_as("SELECT verdict, station, inspected_at FROM inspections WHERE id = $1")
            .bind(expected[0].id.to_string())
            .fetch_one(&server.state.db.pool)
            .await
            .unwrap();
    let want_verdict = match expected[0].verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
    };
    assert_eq!(verdict, want_verdict);
    assert_eq!(station, "ST-04");
    assert_eq!(inspected_at, "2026-09-21T14:13:27.000000Z");
}

/// Kiosks pushing at the same time, each also retrying while its first request still runs, with
/// the batch in other orders: every request succeeds (no deadlock, no serialization error) and
/// each record is applied by exactly one of them.
async fn concurrent_pushes_apply_each_record_exactly_once(backend: Backend) {
    let server = Arc::new(Server::start(backend).await);
    let mut requests = tokio::task::JoinSet::new();
    let mut expected = vec![];
    for k in 0..3u128 {
        let device = Uuid::from_u128(0xD0 + k);
        let station = format!("ST-{k}");
        let token = server.enroll(&station).await;
        // Bound before, as a kiosk is after its first sync: the binding must not be what makes
        // the concurrent pushes wait for each other.
        let bind = PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device_id: device,
            records: vec![],
        };
        assert_eq!(server.push(&token, &bind).await.0, StatusCode::OK);
        let records: Vec<_> = (1..=6)
            .map(|seq| {
                record(
                    Uuid::from_u128(k << 16 | seq as u128),
                    device,
                    &station,
                    seq,
                )
            })
            .collect();
        let mut reversed = records.clone();
        reversed.reverse();
        let mut rotated = records.clone();
        rotated.rotate_left(3);
        for batch in [records.clone(), reversed, rotated] {
            let (server, token) = (server.clone(), token.clone());
            let request = PushRequest {
                protocol_version: PROTOCOL_VERSION,
                device_id: device,
                records: batch.clone(),
            };
            requests.spawn(async move { (batch, server.push(&token, &request).await) });
        }
        expected.push((device, records));
    }
    let mut applied: HashMap<Uuid, usize> = HashMap::new();
    while let Some(joined) = requests.join_next().await {
        let (batch, (status, json)) = joined.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        for (record, status) in batch.iter().zip(statuses(json)) {
            match status {
                PushStatus::Applied => *applied.entry(record.id).or_default() += 1,
                PushStatus::AlreadyApplied => {}
                other => panic!("{}: {other:?}", record.id),
            }
        }
    }
    for (device, records) in expected {
        for r in &records {
            assert_eq!(applied.get(&r.id), Some(&1), "record {}", r.id);
        }
        assert_eq!(server.stored_records(device).await, records);
        assert_eq!(highest_sequence(&server, device).await, Some(6));
    }
}

async fn invalid_and_conflicting_records_are_rejected_one_by_one_while_the_rest_apply(
    backend: Backend,
) {
    let server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let first = record(Uuid::from_u128(1), DEVICE, "ST-04", 1);
    let (status, _) = server.push(&token, &push_of(vec![first.clone()])).await;
    assert_eq!(status, StatusCode::OK);

    let mut invalid = record(Uuid::from_u128(2), DEVICE, "ST-04", 2);
    invalid.detections[0].score = 1.5;
    let same_sequence = record(Uuid::from_u128(3), DEVICE, "ST-04", 1);
    let mut same_id_other_content = first.clone();
    same_id_other_content.operator = "someone else".into();
    let beyond_sql = record(Uuid::from_u128(4), DEVICE, "ST-04", u64::MAX);
    let good = record(Uuid::from_u128(5), DEVICE, "ST-04", 5);
    let batch = vec![
        invalid,
        same_sequence,
        same_id_other_content,
        beyond_sql,
        good.clone(),
    ];
    let (status, json) = server.push(&token, &push_of(batch)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let results = statuses(json);

    let expect_rejected = |status: &PushStatus, needle: &str| match status {
        PushStatus::Rejected { reason, retryable } => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            assert!(!retryable, "{reason}");
        }
        other => panic!("expected a rejection with {needle:?}, got {other:?}"),
    };
    expect_rejected(&results[0], "detections[0].score");
    expect_rejected(
        &results[1],
        &format!("already taken by record {}", first.id),
    );
    expect_rejected(&results[2], "already stored with different content");
    expect_rejected(&results[3], "is larger than");
    assert_eq!(results[4], PushStatus::Applied);
    assert_eq!(server.stored_records(DEVICE).await, vec![first, good]);
    assert_eq!(highest_sequence(&server, DEVICE).await, Some(5));
}

async fn push_refuses_malformed_json_wrong_types_and_oversized_bodies(backend: Backend) {
    let server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let push = |body: Vec<u8>| server.send(Method::POST, "/api/v1/sync/push", Some(&token), body);

    let (status, json) = push(b"{\"protocol_version\": 1, \"device_id\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&json).contains("EOF"), "{json}");

    let mut wrong_type = serde_json::to_value(push_of(vec![record(
        Uuid::from_u128(1),
        DEVICE,
        "ST-04",
        1,
    )]))
    .unwrap();
    wrong_type["records"][0]["sequence"] = json!("seven");
    let (status, json) = push(serde_json::to_vec(&wrong_type).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&json).contains("records[0].sequence"), "{json}");

    let (status, json) = push(br#"{"protocol_version": 1}"#.to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&json).contains("device_id"), "{json}");

    let (status, json) = push(vec![b' '; MAX_PUSH_BYTES + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert!(error_of(&json).contains("length limit"), "{json}");
    assert!(server.stored_records(DEVICE).await.is_empty());
}

async fn push_of_another_protocol_version_is_refused_with_the_reason(backend: Backend) {
    let server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let mut request = push_of(vec![record(Uuid::from_u128(1), DEVICE, "ST-04", 1)]);
    request.protocol_version = PROTOCOL_VERSION + 1;
    let (status, json) = server.push(&token, &request).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let expected = protocol::check_version(PROTOCOL_VERSION + 1)
        .unwrap_err()
        .to_string();
    assert_eq!(error_of(&json), expected);

    // A future kiosk's records may have another shape: it still learns to update, not "bad JSON".
    let future = json!({ "protocol_version": PROTOCOL_VERSION + 1, "batch": [{ "v2": true }] });
    let (status, json) = server.push(&token, &future).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_of(&json), expected);
    assert!(server.stored_records(DEVICE).await.is_empty());
}

async fn push_and_snapshot_upload_need_a_station_token(backend: Backend) {
    let server = Server::start(backend).await;
    server.enroll("ST-04").await;
    let body = serde_json::to_vec(&push_of(vec![])).unwrap();
    let image = jpeg(1);
    let snapshot_path = format!("/api/v1/snapshots/{}", sha256_hex(&image));
    for (method, path, body) in [
        (Method::POST, "/api/v1/sync/push", body),
        (Method::PUT, snapshot_path.as_str(), image),
    ] {
        let (status, json) = server.send(method.clone(), path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(error_of(&json).contains("missing Authorization"), "{json}");

        let wrong = "0".repeat(64);
        let (status, json) = server
            .send(method.clone(), path, Some(&wrong), body.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error_of(&json), "unknown station token");

        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Basic dXNlcjpwYXNz")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = tower::ServiceExt::oneshot(server.app.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(server.stored_records(DEVICE).await.is_empty());
    assert!(!server.data_dir.join("snapshots").exists());
}

async fn a_token_writes_only_for_its_station_and_its_first_device(backend: Backend) {
    let server = Server::start(backend).await;
    let st04 = server.enroll("ST-04").await;
    let st05 = server.enroll("ST-05").await;
    let (status, _) = server.push(&st04, &push_of(vec![])).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first push binds DEVICE to ST-04's token"
    );

    // ST-04's token writing as ST-05.
    let forged = record(Uuid::from_u128(1), DEVICE, "ST-05", 1);
    let (status, json) = server.push(&st04, &push_of(vec![forged])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&json).contains("this token is for station \"ST-04\""),
        "{json}"
    );

    // A stolen token used from another device.
    let other = Uuid::from_u128(0xD2);
    let stolen = PushRequest {
        device_id: other,
        ..push_of(vec![record(Uuid::from_u128(2), other, "ST-04", 1)])
    };
    let (status, json) = server.push(&st04, &stolen).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&json).contains(&format!("belongs to device {DEVICE}")),
        "{json}"
    );

    // A record of another device smuggled into this device's push.
    let smuggled = push_of(vec![record(Uuid::from_u128(3), other, "ST-04", 1)]);
    let (status, json) = server.push(&st04, &smuggled).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&json).contains("not to the pushing device"),
        "{json}"
    );

    // Another station's token taking over a device that is already bound.
    let takeover = push_of(vec![record(Uuid::from_u128(4), DEVICE, "ST-05", 9)]);
    let (status, json) = server.push(&st05, &takeover).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&json).contains("enrolled with another station token"),
        "{json}"
    );

    assert!(server.stored_records(DEVICE).await.is_empty());
    let legit = record(Uuid::from_u128(5), DEVICE, "ST-04", 1);
    let (status, json) = server.push(&st04, &push_of(vec![legit.clone()])).await;
    assert_eq!(statuses(json), vec![PushStatus::Applied], "{status}");
    assert_eq!(server.stored_records(DEVICE).await, vec![legit]);
}

async fn a_record_commits_only_after_its_snapshot_is_stored(backend: Backend) {
    let server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let image = jpeg(42);
    let r = with_snapshot(record(Uuid::from_u128(1), DEVICE, "ST-04", 1), &image);

    let (status, json) = server.push(&token, &push_of(vec![r.clone()])).await;
    assert_eq!(status, StatusCode::OK);
    match &statuses(json)[0] {
        PushStatus::Rejected { reason, retryable } => {
            assert!(reason.contains("upload the snapshot first"), "{reason}");
            assert!(retryable);
        }
        other => panic!("{other:?}"),
    }
    assert!(server.stored_records(DEVICE).await.is_empty());
    assert_eq!(highest_sequence(&server, DEVICE).await, None);

    assert_eq!(
        server.put_snapshot(&token, &image).await,
        StatusCode::CREATED
    );
    let mut wrong_len = with_snapshot(record(Uuid::from_u128(2), DEVICE, "ST-04", 2), &image);
    wrong_len.snapshot.as_mut().unwrap().byte_len += 1;
    let (_, json) = server
        .push(&token, &push_of(vec![r.clone(), wrong_len]))
        .await;
    let results = statuses(json);
    assert_eq!(results[0], PushStatus::Applied);
    assert!(
        matches!(&results[1], PushStatus::Rejected { reason, retryable: false } if reason.contains("but the record says")),
        "{:?}",
        results[1]
    );
    assert_eq!(server.stored_records(DEVICE).await, vec![r]);
}

async fn snapshots_are_verified_and_stored_once_under_their_hash(backend: Backend) {
    let server = Server::start(backend).await;
    let token = server.enroll("ST-04").await;
    let image = jpeg(7);
    let sha = sha256_hex(&image);
    let put = |path: String, body: Vec<u8>| {
        let token = token.clone();
        let server = &server;
        async move { server.send(Method::PUT, &path, Some(&token), body).await }
    };

    for bad in ["abc".to_string(), sha.to_uppercase(), format!("{sha}0")] {
        let (status, json) = put(format!("/api/v1/snapshots/{bad}"), image.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            error_of(&json).contains("64 lower-case hex digits"),
            "{json}"
        );
    }
    let other = sha256_hex(&jpeg(8));
    let (status, json) = put(format!("/api/v1/snapshots/{other}"), image.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&json).contains(&format!("SHA-256 is {sha}, not {other}")),
        "{json}"
    );

    let text = b"not an image".to_vec();
    let (status, json) = put(format!("/api/v1/snapshots/{}", sha256_hex(&text)), text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(error_of(&json).contains("not a JPEG"), "{json}");

    let huge = vec![0xFF; MAX_SNAPSHOT_BYTES + 1];
    let (status, _) = put(format!("/api/v1/snapshots/{}", sha256_hex(&huge)), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let path = format!("/api/v1/snapshots/{sha}");
    let (status, json) = put(path.clone(), image.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(json, json!({ "sha256": sha, "byte_len": image.len() }));
    let (status, _) = put(path, image.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a second upload leaves the stored one as is"
    );

    // Only the finished file is left: no temporary files, nothing for the refused uploads.
    let root = server.data_dir.join("snapshots");
    let files: Vec<_> = walk(&root);
    assert_eq!(files, vec![root.join(&sha[..2]).join(&sha)]);
    assert_eq!(std::fs::read(&files[0]).unwrap(), image);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `enroll-station` through the real binary: its token pushes; the serve flags still work bare.
async fn enroll_station_prints_a_token_that_the_server_accepts(backend: Backend) {
    let server = Server::start(backend).await;
    let binary = env!("CARGO_BIN_EXE_linecheck-server");
    let mut enroll = std::process::Command::new(binary);
    enroll
        .args(["enroll-station", "--station", "ST-09", "--data-dir"])
        .arg(&server.data_dir);
    // The environment variable, as a service unit would set it.
    match &server.database_url {
        Some(url) => enroll.env("LINECHECK_DATABASE_URL", url),
        None => enroll.env_remove("LINECHECK_DATABASE_URL"),
    };
    let output = enroll.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{token}");

    let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM station_tokens")
        .fetch_all(&server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![sha256_hex(token.as_bytes())],
        "only the hash is stored"
    );

    let r = record(Uuid::from_u128(1), DEVICE, "ST-09", 1);
    let (status, json) = server.push(&token, &push_of(vec![r])).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(statuses(json), vec![PushStatus::Applied]);

    // No subcommand means serve, with the flags `cargo xtask run` and the e2e tests pass.
    let output = std::process::Command::new(binary)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--static-dir",
            "/nonexistent",
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("/nonexistent has no index.html"),
        "{stderr}"
    );
}

on_both_databases!(
    concurrent_pushes_apply_each_record_exactly_once,
    pushed_records_are_stored_once_and_repeats_answer_already_applied,
    invalid_and_conflicting_records_are_rejected_one_by_one_while_the_rest_apply,
    push_refuses_malformed_json_wrong_types_and_oversized_bodies,
    push_of_another_protocol_version_is_refused_with_the_reason,
    push_and_snapshot_upload_need_a_station_token,
    a_token_writes_only_for_its_station_and_its_first_device,
    a_record_commits_only_after_its_snapshot_is_stored,
    snapshots_are_verified_and_stored_once_under_their_hash,
    enroll_station_prints_a_token_that_the_server_accepts,
);
