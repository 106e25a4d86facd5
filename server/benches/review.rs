//! The review benchmark: generates inspections (1,000,000 by default) in a fresh database and times
//! the supervisors' review queries on them through the real router, printing a table.
//!
//! ```text
//! cargo bench -p linecheck-server --bench review -- [--records N]
//!     [--database-url postgres://...]    # default: SQLite in a temporary folder
//! ```
//!
//! Rows are generated straight into the tables a push writes (in multi-row inserts), because
//! pushing a million records over HTTP is what `benches/ingest.rs` measures, not this.

use anyhow::{Context, bail};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use chrono::{FixedOffset, TimeZone, Utc};
use clap::Parser;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use linecheck_server::{AppState, router, supervisors::add_supervisor};
use protocol::{
    BoundingBox, ClassThreshold, Detection, InspectionRecord, ModelRef, OperatorDecision,
    SnapshotRef, Verdict, verdict_for,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// How many inspections to generate.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// A PostgreSQL database to fill (it must be empty); SQLite in a temporary folder otherwise.
    #[arg(long)]
    database_url: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

const STATIONS: usize = 20;
const LABELS: [&str; 5] = ["scratch", "dent", "stain", "crack", "burr"];
const FRAME: (i64, i64) = (1280, 720);
const ROWS_PER_INSERT: usize = 500;

/// One generated inspection: the record, its snapshot hash and its rounded detection centres.
fn generate(n: usize, rng: &mut StdRng) -> InspectionRecord {
    let station = n % STATIONS;
    // 60 days of history, newest at `n = 0`... spread evenly, a few seconds apart.
    let start = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
    let inspected_at = start + chrono::TimeDelta::milliseconds(n as i64 * 5_184);
    let defects = match rng.random_range(0..100) {
        0..80 => 0,
        80..95 => 1,
        _ => 2,
    };
    let detections = (0..defects)
        .map(|_| {
            // Skewed like real lines: the first classes dominate (a Pareto worth drawing).
            let class = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4][rng.random_range(0..11)];
            let x = rng.random_range(0.0..(FRAME.0 - 60) as f32);
            let y = rng.random_range(0.0..(FRAME.1 - 40) as f32);
            Detection {
                class_id: class as u32,
                label: LABELS[class].into(),
                score: rng.random_range(0.3..1.0),
                bbox: BoundingBox {
                    x1: x,
                    y1: y,
                    x2: x + 60.0,
                    y2: y + 40.0,
                },
            }
        })
        .collect::<Vec<_>>();
    let thresholds = vec![ClassThreshold {
        class_id: 4,
        threshold: 0.8,
    }];
    let device = Uuid::from_u128(0xD000 + station as u128);
    InspectionRecord {
        id: Uuid::from_u128(rng.random()),
        device_id: device,
        sequence: (n / STATIONS) as u64 + 1,
        inspected_at,
        local_time: inspected_at.with_timezone(&FixedOffset::east_opt(3600).unwrap()),
        station: format!("ST-{station:02}"),
        line: format!("Line {}", station % 4 + 1),
        operator: format!("badge-{:04}", rng.random_range(0..50)),
        part_serial: format!("SN-{n:08}"),
        lot: format!("LOT-{:04}", n / 5_000),
        model: ModelRef {
            id: "linecheck-defects".into(),
            version: "3".into(),
        },
        verdict: verdict_for(&detections, &thresholds, 0.5),
        default_threshold: 0.5,
        thresholds,
        detections,
        decision: OperatorDecision::Confirmed,
        snapshot: Some(SnapshotRef {
            sha256: format!("{:064x}", n),
            byte_len: 48_000,
        }),
    }
}

fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn fill(state: &AppState, records: usize) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let pool = &state.db.pool;
    let mut n = 0;
    while n < records {
        let batch: Vec<InspectionRecord> = (n..(n + ROWS_PER_INSERT).min(records))
            .map(|i| generate(i, &mut rng))
            .collect();
        let mut tx = pool.begin().await?;
        let sql = format!(
            "INSERT INTO inspections (id, device_id, sequence, inspected_at, local_time, station,
               line, operator, part_serial, lot, model_id, model_version, verdict, record_json,
               snapshot_sha256, received_at, snapshot_width, snapshot_height) VALUES {}",
            placeholders(batch.len(), 18)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        let mut detections = vec![];
        for r in &batch {
            let verdict = if r.verdict == Verdict::Fail {
                "fail"
            } else {
                "pass"
            };
            let at = r
                .inspected_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            insert = insert
                .bind(r.id.to_string())
                .bind(r.device_id.to_string())
                .bind(r.sequence as i64)
                .bind(at.clone())
                .bind(r.local_time.to_rfc3339())
                .bind(r.station.clone())
                .bind(r.line.clone())
                .bind(r.operator.clone())
                .bind(r.part_serial.clone())
                .bind(r.lot.clone())
                .bind(r.model.id.clone())
                .bind(r.model.version.clone())
                .bind(verdict)
                .bind(serde_json::to_string(r)?)
                .bind(r.snapshot.as_ref().map(|s| s.sha256.clone()))
                .bind(at)
                .bind(FRAME.0)
                .bind(FRAME.1);
            for (i, d) in r.detections.iter().enumerate() {
                detections.push((r.id.to_string(), i, d.clone()));
            }
        }
        insert.execute(&mut *tx).await?;
        for chunk in detections.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO inspection_detections (inspection_id, position, class_id, label, score,
                   centre_x, centre_y) VALUES {}",
                placeholders(chunk.len(), 7)
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, position, d) in chunk {
                insert = insert
                    .bind(id.clone())
                    .bind(*position as i32)
                    .bind(i64::from(d.class_id))
                    .bind(d.label.clone())
                    .bind(f64::from(d.score))
                    .bind(((d.bbox.x1 + d.bbox.x2) / 2.0).round() as i64)
                    .bind(((d.bbox.y1 + d.bbox.y2) / 2.0).round() as i64);
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        n += batch.len();
        if n % 100_000 == 0 {
            eprintln!("  {n} inspections generated");
        }
    }
    // Planner statistics, as a database that has been in use for a while has them.
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

/// The peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Timed {
    what: String,
    best: Duration,
    median: Duration,
    rows: usize,
    bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let state = AppState::open(dir.path(), args.database_url.as_deref()).await?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inspections")
        .fetch_one(&state.db.pool)
        .await?;
    if existing != 0 {
        bail!("the database holds {existing} inspections already: give an empty one");
    }
    let database = state.db.dialect.name();
    eprintln!("generating {} inspections in {database}...", args.records);
    let started = Instant::now();
    fill(&state, args.records).await?;
    let generated = started.elapsed();
    add_supervisor(&state.db.pool, "bench", "bench-password", false).await?;
    let app = router(state.clone(), dir.path().join("dist"));
    let login = app
        .clone()
        .oneshot(
            Request::post("/api/v1/session")
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"name":"bench","password":"bench-password"}"#,
                ))?,
        )
        .await?;
    let cookie = login.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .context("no session cookie")?
        .to_owned();

    // A cursor from the middle of the history, as a supervisor paging deep would hold.
    let middle = generate(args.records / 2, &mut StdRng::seed_from_u64(0));
    let deep_cursor = format!(
        "{}|ffffffff-ffff-ffff-ffff-ffffffffffff",
        middle
            .inspected_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let deep_cursor: String =
        url::form_urlencoded::byte_serialize(deep_cursor.as_bytes()).collect();
    let half_week = chrono::TimeDelta::hours(84);
    let week = format!(
        "from={}&to={}",
        (middle.inspected_at - half_week).format("%Y-%m-%dT%H:%M:%SZ"),
        (middle.inspected_at + half_week).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let queries: Vec<(String, String, usize)> = vec![
        (
            "history, first page (100)".into(),
            "/api/v1/inspections".into(),
            5,
        ),
        (
            "history, page in the middle".into(),
            format!("/api/v1/inspections?cursor={deep_cursor}"),
            5,
        ),
        (
            "history, station".into(),
            "/api/v1/inspections?station=ST-07".into(),
            5,
        ),
        (
            "history, station + fail".into(),
            "/api/v1/inspections?station=ST-07&verdict=fail".into(),
            5,
        ),
        (
            "history, line + operator".into(),
            "/api/v1/inspections?line=Line%202&operator=badge-0013".into(),
            5,
        ),
        (
            "history, rare class (burr)".into(),
            "/api/v1/inspections?class=burr".into(),
            5,
        ),
        (
            "history, lot".into(),
            format!("/api/v1/inspections?lot={}", middle.lot),
            5,
        ),
        (
            "history, serial".into(),
            format!("/api/v1/inspections?serial={}", middle.part_serial),
            5,
        ),
        (
            "history, one week, 1000".into(),
            format!("/api/v1/inspections?{week}&limit=1000"),
            5,
        ),
        ("stats, one week".into(), format!("/api/v1/stats?{week}"), 3),
        (
            "stats, one station".into(),
            "/api/v1/stats?station=ST-07".into(),
            3,
        ),
        ("stats, everything".into(), "/api/v1/stats".into(), 1),
        (
            "CSV, one week".into(),
            format!("/api/v1/inspections.csv?{week}"),
            3,
        ),
        (
            "CSV, everything".into(),
            "/api/v1/inspections.csv".into(),
            1,
        ),
    ];
    let mut results = vec![];
    let generated_peak = peak_rss_mib();
    for (what, path, runs) in queries {
        let mut times = vec![];
        let (mut rows, mut bytes) = (0, 0);
        for _ in 0..runs {
            let started = Instant::now();
            let response = app
                .clone()
                .oneshot(
                    Request::get(&path)
                        .header("cookie", &cookie)
                        .body(Body::empty())?,
                )
                .await?;
            if response.status() != StatusCode::OK {
                bail!("{path}: {}", response.status());
            }
            if path.contains(".csv") {
                // Counted as it streams, as a browser saving the file would: the peak memory
                // below then shows what the server holds, not the export's size.
                let (mut lines, mut size) = (0, 0);
                let mut stream = response.into_body().into_data_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    size += chunk.len();
                    lines += chunk.iter().filter(|&&b| b == b'\n').count();
                }
                times.push(started.elapsed());
                (rows, bytes) = (lines - 1, size);
                continue;
            }
            let body = response.into_body().collect().await?.to_bytes();
            times.push(started.elapsed());
            bytes = body.len();
            rows = if path.contains("/stats") {
                0
            } else {
                let page: serde_json::Value = serde_json::from_slice(&body)?;
                page["records"].as_array().map_or(0, Vec::len)
            };
        }
        times.sort();
        results.push(Timed {
            what,
            best: times[0],
            median: times[times.len() / 2],
            rows,
            bytes,
        });
    }

    println!(
        "\nreview-bench: {} inspections in {database}, generated in {:.1} s",
        args.records,
        generated.as_secs_f64()
    );
    println!("| query | median ms | best ms | rows | bytes |\n| --- | ---: | ---: | ---: | ---: |");
    for t in &results {
        println!(
            "| {} | {:.1} | {:.1} | {} | {} |",
            t.what,
            t.median.as_secs_f64() * 1000.0,
            t.best.as_secs_f64() * 1000.0,
            t.rows,
            t.bytes
        );
    }
    println!(
        "peak memory of the process: {generated_peak:.0} MiB after generating, {:.0} MiB after \
         all queries (the full CSV export included)",
        peak_rss_mib()
    );
    state.db.close().await;
    Ok(())
}
