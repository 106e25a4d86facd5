//! The audit trail's reader (`GET /api/v1/audit`) and an inspection's corrections
//! (`GET /api/v1/inspections/{id}/corrections`), through the real router on SQLite and PostgreSQL.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use common::{Server, assign, correct, station_with_records};
use database::{Backend, on_both_databases};
use protocol::{AuditChange, AuditPage, Correction, CorrectionAction};
use serde_json::json;

const PASSWORD: &str = "correct horse";

async fn audit(server: &Server, cookie: &str, query: &str) -> AuditPage {
    let (status, json) = server
        .as_supervisor(cookie, Method::GET, &format!("/api/v1/audit?{query}"), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {json}");
    serde_json::from_value(json).unwrap()
}

/// The change numbers of the entries `query` selects (one page).
async fn changes(server: &Server, cookie: &str, query: &str) -> Vec<u64> {
    let page = audit(server, cookie, query).await;
    assert_eq!(page.next_cursor, None, "{query}: one page");
    page.entries.iter().map(|e| e.change_seq).collect()
}

/// Two supervisors' changes to two stations: assignments and corrections.
async fn four_changes(server: &Server) -> (String, String, Vec<uuid::Uuid>) {
    let maria = server.supervisor_session("maria", PASSWORD).await;
    let ben = server.supervisor_session("ben", PASSWORD).await;
    let (_, st1) = station_with_records(server, 1, 2).await;
    let (_, st2) = station_with_records(server, 2, 1).await;
    let thresholds = json!({ "model_id": null, "default_threshold": 0.4, "thresholds": [] });
    let (status, json) = assign(server, &maria, "ST-01", thresholds.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    correct(
        server,
        &maria,
        st1[1],
        json!({ "kind": "missed_defect", "class_id": 0, "label": "scratch",
                "bbox": { "x1": 5.0, "y1": 6.0, "x2": 50.0, "y2": 60.0 } }),
    )
    .await;
    correct(
        server,
        &ben,
        st2[0],
        json!({ "kind": "delete", "detection": 0 }),
    )
    .await;
    let (status, json) = assign(server, &ben, "ST-02", thresholds).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    (maria, ben, vec![st1[1], st2[0]])
}

async fn the_audit_trail_lists_who_did_what_newest_first(backend: Backend) {
    let server = Server::start(backend).await;
    let (maria, _, corrected) = four_changes(&server).await;

    let all = audit(&server, &maria, "").await;
    assert_eq!(all.next_cursor, None);
    let summary: Vec<_> = all
        .entries
        .iter()
        .map(|e| {
            (
                e.change_seq,
                e.supervisor.as_str(),
                e.change.kind(),
                e.station.as_deref(),
                e.subject.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (4, "ben", "assign_station", Some("ST-02"), "ST-02".into()),
            (
                3,
                "ben",
                "correct_inspection",
                Some("ST-02"),
                corrected[1].to_string()
            ),
            (
                2,
                "maria",
                "correct_inspection",
                Some("ST-01"),
                corrected[0].to_string()
            ),
            (1, "maria", "assign_station", Some("ST-01"), "ST-01".into()),
        ]
    );
    assert_eq!(
        all.entries[1].change,
        AuditChange::CorrectInspection(CorrectionAction::Delete { detection: 0 })
    );
    let AuditChange::CorrectInspection(CorrectionAction::MissedDefect { label, bbox, .. }) =
        &all.entries[2].change
    else {
        panic!("{:?}", all.entries[2]);
    };
    assert_eq!((label.as_str(), bbox.x2), ("scratch", 50.0));
    assert!(all.entries.windows(2).all(|w| w[0].at >= w[1].at));

    // Paged by change number: each page continues where the last ended.
    let mut paged = vec![];
    let mut query = "limit=3".to_string();
    loop {
        let page = audit(&server, &maria, &query).await;
        assert!(page.entries.len() <= 3);
        paged.extend(page.entries.iter().map(|e| e.change_seq));
        match page.next_cursor {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, vec![4, 3, 2, 1]);
    assert_eq!(changes(&server, &maria, "limit=1&cursor=2").await, vec![1]);

    // Each filter, and filters together.
    assert_eq!(
        changes(&server, &maria, "kind=correct_inspection").await,
        vec![3, 2]
    );
    assert_eq!(
        changes(&server, &maria, "kind=upload_model").await,
        Vec::<u64>::new()
    );
    assert_eq!(changes(&server, &maria, "station=ST-01").await, vec![2, 1]);
    assert_eq!(changes(&server, &maria, "supervisor=ben").await, vec![4, 3]);
    assert_eq!(
        changes(&server, &maria, "supervisor=maria&kind=assign_station").await,
        vec![1]
    );
    let made_at = all.entries[2].at.to_rfc3339();
    let from = url::form_urlencoded::byte_serialize(made_at.as_bytes()).collect::<String>();
    assert_eq!(
        changes(&server, &maria, &format!("from={from}")).await,
        vec![4, 3, 2]
    );
    assert_eq!(
        changes(&server, &maria, &format!("to={from}")).await,
        vec![1]
    );
    assert_eq!(
        changes(&server, &maria, "from=2126-01-01T00:00:00Z").await,
        Vec::<u64>::new()
    );
}

async fn the_audit_trail_needs_a_session_and_refuses_bad_filters(backend: Backend) {
    let server = Server::start(backend).await;
    let (maria, _, _) = four_changes(&server).await;
    let (status, json) = server.send(Method::GET, "/api/v1/audit", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, json) = server
        .as_supervisor("linecheck_session=forged", Method::GET, "/api/v1/audit", "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    for (query, named) in [
        ("kind=rename", "kind"),
        ("from=yesterday", "from"),
        ("cursor=last", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("operator=ana", "operator"),
    ] {
        let (status, json) = server
            .as_supervisor(&maria, Method::GET, &format!("/api/v1/audit?{query}"), "")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {json}");
        let reason = json["error"].as_str().unwrap();
        assert!(reason.contains(named), "{query}: {reason}");
    }
}

async fn an_inspections_corrections_are_read_back_in_order(backend: Backend) {
    let server = Server::start(backend).await;
    let maria = server.supervisor_session("maria", PASSWORD).await;
    let ben = server.supervisor_session("ben", PASSWORD).await;
    let (_, ids) = station_with_records(&server, 1, 2).await;
    let path = format!("/api/v1/inspections/{}/corrections", ids[0]);
    let (status, json) = server.as_supervisor(&maria, Method::GET, &path, "").await;
    assert_eq!((status, json), (StatusCode::OK, json!([])));

    let relabel = json!({ "kind": "relabel", "detection": 0, "class_id": 2, "label": "dent" });
    let first = correct(&server, &maria, ids[0], relabel).await;
    correct(
        &server,
        &maria,
        ids[1],
        json!({ "kind": "confirm", "detection": 0 }),
    )
    .await;
    let second = correct(
        &server,
        &ben,
        ids[0],
        json!({ "kind": "delete", "detection": 0 }),
    )
    .await;
    let (status, json) = server.as_supervisor(&ben, Method::GET, &path, "").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let listed: Vec<Correction> = serde_json::from_value(json).unwrap();
    let made: Vec<Correction> = vec![
        serde_json::from_value(first).unwrap(),
        serde_json::from_value(second).unwrap(),
    ];
    assert_eq!(listed, made);

    let (status, _) = server.send(Method::GET, &path, None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = format!(
        "/api/v1/inspections/{}/corrections",
        uuid::Uuid::from_u128(9)
    );
    let (status, json) = server.as_supervisor(&ben, Method::GET, &unknown, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    let (status, json) = server
        .as_supervisor(
            &ben,
            Method::GET,
            "/api/v1/inspections/nine/corrections",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
}

on_both_databases!(
    the_audit_trail_lists_who_did_what_newest_first,
    the_audit_trail_needs_a_session_and_refuses_bad_filters,
    an_inspections_corrections_are_read_back_in_order,
);
