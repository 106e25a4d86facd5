//! The supervisors' review queries: filtered, keyset-paged history, its CSV export and the chart
//! statistics, checked against what was pushed, on SQLite and PostgreSQL.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use chrono::{FixedOffset, TimeZone, Timelike, Utc};
use common::{Server, record, with_snapshot};
use database::{Backend, on_both_databases};
use http_body_util::BodyExt;
use protocol::{
    BoundingBox, ClassThreshold, Detection, InspectionPage, InspectionRecord, PROTOCOL_VERSION,
    PushRequest, Stats, Verdict, verdict_for,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

const FRAME: (u16, u16) = (640, 480);

/// A JPEG header with a start-of-frame segment of `FRAME`'s size, unique per `seed`.
fn framed_jpeg(seed: u64) -> Vec<u8> {
    let [w1, w0] = FRAME.0.to_be_bytes();
    let [h1, h0] = FRAME.1.to_be_bytes();
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x0A];
    bytes.extend_from_slice(&seed.to_le_bytes());
    bytes.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, h1, h0, w1, w0, 0x03]);
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

/// 48 varied records over two stations, several hours, shifts and days; ST-01's with snapshots.
fn dataset() -> Vec<InspectionRecord> {
    let mut records = vec![];
    for (s, station) in ["ST-01", "ST-02"].into_iter().enumerate() {
        let device = Uuid::from_u128(0xD0 + s as u128);
        for n in 1..=24u64 {
            let mut r = record(
                Uuid::from_u128((s as u128) << 32 | n as u128),
                device,
                station,
                n,
            );
            // 5 h 10 min apart from 2026-11-23 00:05 UTC: every shift on three days.
            let at = Utc.with_ymd_and_hms(2026, 11, 23, 0, 5, 0).unwrap()
                + chrono::TimeDelta::minutes(310 * n as i64 + 7 * s as i64);
            r.inspected_at = at;
            r.local_time = at.with_timezone(&FixedOffset::east_opt(3600).unwrap());
            r.line = format!("Line {}", s + 1);
            r.operator = if n % 2 == 0 {
                "ana".into()
            } else {
                "ben, \"jr\"".into()
            };
            r.lot = format!("LOT-{}", n % 3);
            r.part_serial = format!("SN-{s}-{n:03}");
            r.detections = if n % 4 == 0 {
                vec![]
            } else {
                let x = (n * 97 % 600) as f32;
                let y = (n * 53 % 440) as f32;
                vec![Detection {
                    class_id: (n % 3) as u32,
                    label: ["scratch", "dent", "stain"][(n % 3) as usize].into(),
                    score: if n % 5 == 0 { 0.2 } else { 0.9 },
                    bbox: BoundingBox {
                        x1: x,
                        y1: y,
                        x2: x + 30.0,
                        y2: y + 20.0,
                    },
                }]
            };
            r.thresholds = vec![ClassThreshold {
                class_id: 2,
                threshold: 0.95,
            }];
            r.verdict = verdict_for(&r.detections, &r.thresholds, r.default_threshold);
            if s == 0 {
                r = with_snapshot(r, &framed_jpeg(n));
            }
            records.push(r);
        }
    }
    records
}

/// A server holding `dataset()`, and a supervisor's session.
async fn loaded(backend: Backend) -> (Server, String, Vec<InspectionRecord>) {
    let server = Server::start(backend).await;
    let records = dataset();
    for (s, station) in ["ST-01", "ST-02"].into_iter().enumerate() {
        let token = server.enroll(station).await;
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.station == station)
            .cloned()
            .collect();
        for n in 1..=24 {
            if s == 0 {
                assert_eq!(
                    server.put_snapshot(&token, &framed_jpeg(n)).await,
                    StatusCode::CREATED
                );
            }
        }
        let push = PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device_id: mine[0].device_id,
            records: mine,
        };
        let (status, json) = server.push(&token, &push).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert!(
            json["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "applied")
        );
    }
    let cookie = server.supervisor_session("maria", "correct horse").await;
    (server, cookie, records)
}

fn newest_first(mut records: Vec<InspectionRecord>) -> Vec<InspectionRecord> {
    records.sort_by_key(|r| std::cmp::Reverse((r.inspected_at, r.id.to_string())));
    records
}

/// Every page of `GET /api/v1/inspections?query`, followed by its cursors.
async fn all_pages(server: &Server, cookie: &str, query: &str) -> (Vec<InspectionRecord>, usize) {
    let mut records = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/inspections?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", url_encode(c)));
        }
        let (status, json) = server.as_supervisor(cookie, Method::GET, &path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {json}");
        let page: InspectionPage = serde_json::from_value(json).unwrap();
        pages += 1;
        records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (records, pages),
        }
    }
}

fn url_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn history_filters_and_pages_match_what_was_pushed(backend: Backend) {
    let (server, cookie, records) = loaded(backend).await;
    let from = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    type Keep = Box<dyn Fn(&InspectionRecord) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        ("limit=7".into(), Box::new(|_| true)),
        (
            "station=ST-02&limit=5".into(),
            Box::new(|r| r.station == "ST-02"),
        ),
        ("line=Line%201".into(), Box::new(|r| r.line == "Line 1")),
        (
            "operator=ana&verdict=fail".into(),
            Box::new(|r| r.operator == "ana" && r.verdict == Verdict::Fail),
        ),
        (
            "verdict=pass&limit=3".into(),
            Box::new(|r| r.verdict == Verdict::Pass),
        ),
        (
            "class=dent&limit=4".into(),
            Box::new(|r| r.detections.iter().any(|d| d.label == "dent")),
        ),
        (
            "lot=LOT-2&station=ST-01".into(),
            Box::new(|r| r.lot == "LOT-2" && r.station == "ST-01"),
        ),
        (
            "serial=SN-1-007".into(),
            Box::new(|r| r.part_serial == "SN-1-007"),
        ),
        (
            format!(
                "from={}&to={}&limit=6",
                url_encode(&from.to_rfc3339()),
                url_encode(&to.to_rfc3339())
            ),
            Box::new(move |r| r.inspected_at >= from && r.inspected_at < to),
        ),
        ("class=stain&verdict=fail".into(), Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        let expected = newest_first(records.iter().filter(|r| keep(r)).cloned().collect());
        let (got, pages) = all_pages(&server, &cookie, &query).await;
        assert_eq!(got, expected, "{query}");
        let ids: HashSet<_> = got.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), got.len(), "{query}: a record on two pages");
        if let Some(limit) = query.split("limit=").nth(1) {
            let limit: usize = limit.parse().unwrap();
            assert_eq!(pages, expected.len().div_ceil(limit).max(1), "{query}");
        }
    }
}

async fn csv_export_holds_exactly_the_filtered_rows(backend: Backend) {
    let (server, cookie, records) = loaded(backend).await;
    let response = server
        .raw_request(
            Method::GET,
            "/api/v1/inspections.csv?verdict=fail&line=Line%202",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,inspected_at,local_time,station,line,operator")
    );
    let expected = newest_first(
        records
            .iter()
            .filter(|r| r.verdict == Verdict::Fail && r.line == "Line 2")
            .cloned()
            .collect(),
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), expected.len());
    for (row, r) in rows.iter().zip(&expected) {
        assert!(row.starts_with(&format!("{},", r.id)), "{row}");
        assert!(row.contains(",fail,confirmed,"), "{row}");
        if r.operator.contains(',') {
            assert!(row.contains(",\"ben, \"\"jr\"\"\","), "quoted: {row}");
        }
    }
}

async fn stats_count_hours_shifts_days_classes_and_locations(backend: Backend) {
    let (server, cookie, records) = loaded(backend).await;
    let (status, json) = server
        .as_supervisor(&cookie, Method::GET, "/api/v1/stats?station=ST-01", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let stats: Stats = serde_json::from_value(json).unwrap();
    let mine: Vec<_> = records.iter().filter(|r| r.station == "ST-01").collect();

    let mut hours: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut shifts: BTreeMap<(String, &str), (u64, u64)> = BTreeMap::new();
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut cells = vec![0u64; 100];
    for r in &mine {
        let failed = u64::from(r.verdict == Verdict::Fail);
        let hour = r.local_time.format("%Y-%m-%dT%H").to_string();
        let h = hours.entry(hour).or_default();
        h.0 += 1;
        h.1 += failed;
        let shift = match r.local_time.hour() {
            6..14 => "early",
            14..22 => "late",
            _ => "night",
        };
        let s = shifts
            .entry((r.local_time.format("%Y-%m-%d").to_string(), shift))
            .or_default();
        s.0 += 1;
        s.1 += failed;
        for d in &r.detections {
            *classes.entry(&d.label).or_default() += 1;
            let cx = ((d.bbox.x1 + d.bbox.x2) / 2.0).round() as u64;
            let cy = ((d.bbox.y1 + d.bbox.y2) / 2.0).round() as u64;
            let column = (cx * 10 / u64::from(FRAME.0)).min(9) as usize;
            let row = (cy * 10 / u64::from(FRAME.1)).min(9) as usize;
            cells[row * 10 + column] += 1;
        }
    }
    let got_hours: BTreeMap<_, _> = stats
        .per_hour
        .iter()
        .map(|p| (p.period.clone(), (p.inspections, p.failed)))
        .collect();
    assert_eq!(got_hours, hours);
    let got_shifts: BTreeMap<_, _> = stats
        .per_shift
        .iter()
        .map(|s| {
            (
                (s.date.clone(), s.shift.as_str()),
                (s.inspections, s.failed),
            )
        })
        .collect();
    assert_eq!(got_shifts, shifts);
    assert_eq!(
        got_shifts
            .keys()
            .map(|(_, shift)| *shift)
            .collect::<HashSet<_>>(),
        HashSet::from(["early", "late", "night"]),
        "the data covers every shift"
    );
    let days: u64 = stats.yield_per_day.iter().map(|d| d.inspections).sum();
    assert_eq!(days, mine.len() as u64);
    for day in &stats.yield_per_day {
        let passed = mine
            .iter()
            .filter(|r| r.local_time.format("%Y-%m-%d").to_string() == day.date)
            .filter(|r| r.verdict == Verdict::Pass)
            .count() as u64;
        assert_eq!(day.passed, passed, "{}", day.date);
        assert_eq!(day.yield_ratio, passed as f64 / day.inspections as f64);
    }
    let mut pareto: Vec<_> = classes.into_iter().collect();
    pareto.sort_by_key(|(label, n)| (std::cmp::Reverse(*n), *label));
    let got: Vec<_> = stats
        .pareto
        .iter()
        .map(|c| (c.label.as_str(), c.detections))
        .collect();
    assert_eq!(got, pareto);
    assert_eq!(stats.pareto.last().unwrap().cumulative_share, 1.0);
    assert_eq!(stats.heatmap.bins, 10);
    assert_eq!(stats.heatmap.counts, cells);
    assert!(
        cells.iter().filter(|&&n| n > 0).count() > 5,
        "the boxes spread over the frame"
    );

    // A class filter narrows the Pareto to that class.
    let (_, json) = server
        .as_supervisor(&cookie, Method::GET, "/api/v1/stats?class=dent", "")
        .await;
    let dent: Stats = serde_json::from_value(json).unwrap();
    assert_eq!(dent.pareto.len(), 1);
    let dents = records
        .iter()
        .flat_map(|r| &r.detections)
        .filter(|d| d.label == "dent")
        .count();
    assert_eq!(dent.pareto[0].detections, dents as u64);
}

async fn review_queries_refuse_bad_filters_and_strangers(backend: Backend) {
    let (server, cookie, _) = loaded(backend).await;
    let cases = [
        ("/api/v1/inspections?from=yesterday", "from"),
        ("/api/v1/inspections?to=2026-13-01T00:00:00Z", "to"),
        ("/api/v1/inspections?verdict=maybe", "verdict"),
        ("/api/v1/inspections?limit=0", "limit"),
        ("/api/v1/inspections?limit=5000", "limit"),
        ("/api/v1/inspections?limit=ten", "limit"),
        ("/api/v1/inspections?cursor=abc", "cursor"),
        (
            "/api/v1/inspections?cursor=2026-11-23T00:00:00Z%7Cnot-a-uuid",
            "cursor",
        ),
        ("/api/v1/inspections?stattion=ST-01", "stattion"),
        ("/api/v1/inspections.csv?verdict=maybe", "verdict"),
        ("/api/v1/inspections.csv?limit=5", "CSV export holds every"),
        ("/api/v1/stats?from=now", "from"),
        ("/api/v1/stats?cursor=x", "stats cover every"),
    ];
    for (path, mentions) in cases {
        let (status, json) = server.as_supervisor(&cookie, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {json}");
        let error = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {json}"));
        assert!(error.contains(mentions), "{path}: {json}");
    }
    let token = server.enroll("ST-09").await;
    for path in [
        "/api/v1/inspections",
        "/api/v1/inspections.csv",
        "/api/v1/stats",
    ] {
        let (status, json) = server.send(Method::GET, path, Some(&token), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {json}");
        let _: &Value = &json;
    }
}

/// The training set holds every filtered record with a snapshot, its JPEG byte for byte, and
/// labels after the supervisors' corrections.
async fn training_set_export_holds_the_snapshots_and_corrected_labels(backend: Backend) {
    let (server, cookie, records) = loaded(backend).await;
    // ST-01's first failing record: relabel its box and mark a missed defect.
    let corrected = records
        .iter()
        .find(|r| r.station == "ST-01" && r.verdict == Verdict::Fail)
        .unwrap();
    for action in [
        serde_json::json!({ "kind": "relabel", "detection": 0, "class_id": 4, "label": "pore" }),
        serde_json::json!({ "kind": "missed_defect", "class_id": 1, "label": "dent",
            "bbox": { "x1": 64.0, "y1": 48.0, "x2": 128.0, "y2": 96.0 } }),
    ] {
        let path = format!("/api/v1/inspections/{}/corrections", corrected.id);
        let (status, json) = server
            .as_supervisor(&cookie, Method::POST, &path, action.to_string())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let response = server
        .raw_request(
            Method::GET,
            "/api/v1/training-set.zip?station=ST-01",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body.to_vec())).unwrap();
    let mut read = |name: &str| {
        let mut bytes = vec![];
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut bytes).unwrap();
        bytes
    };
    let yaml = String::from_utf8(read("data.yaml")).unwrap();
    assert!(
        yaml.contains(
            "  0: scratch
  1: dent
  2: stain
  3: class3
  4: pore
"
        ),
        "{yaml}"
    );
    let mut images = 0;
    for (n, r) in (1..).zip(records.iter().filter(|r| r.station == "ST-01")) {
        let split = if r.id.as_bytes()[15].is_multiple_of(10) {
            "val"
        } else {
            "train"
        };
        assert_eq!(
            read(&format!("images/{split}/{}.jpg", r.id)),
            framed_jpeg(n)
        );
        images += 1;
        let labels = String::from_utf8(read(&format!("labels/{split}/{}.txt", r.id))).unwrap();
        let classes: Vec<&str> = labels
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let failing: Vec<String> = r
            .detections
            .iter()
            .filter(|d| {
                d.score >= protocol::threshold_for(&r.thresholds, r.default_threshold, d.class_id)
            })
            .map(|d| d.class_id.to_string())
            .collect();
        if r.id == corrected.id {
            assert_eq!(classes, ["4", "1"], "{labels}");
            // The missed defect's box, as fractions of the 640x480 frame.
            assert_eq!(
                labels.lines().nth(1),
                Some("1 0.150000 0.150000 0.100000 0.100000")
            );
        } else {
            assert_eq!(classes, failing, "{}: {labels}", r.id);
        }
    }
    assert_eq!(images, 24);
    assert_eq!(
        zip.len(),
        2 * images + 1,
        "ST-02's records are filtered out"
    );
}

on_both_databases!(
    history_filters_and_pages_match_what_was_pushed,
    csv_export_holds_exactly_the_filtered_rows,
    training_set_export_holds_the_snapshots_and_corrected_labels,
    stats_count_hours_shifts_days_classes_and_locations,
    review_queries_refuse_bad_filters_and_strangers,
);
