//! The ingest benchmark (issue 7): simulated kiosks flush a day's backlog each, with snapshots,
//! against the real server over HTTP on loopback, as a kiosk's sync loop does: upload each
//! record's snapshot, then push the records in batches. Prints throughput and push latency.
//!
//! ```text
//! cargo bench -p linecheck-server --bench ingest -- [--kiosks 50] [--records 2000]
//!     [--batch 100] [--snapshot-kib 16] [--database-url postgres://...]
//! ```
//!
//! The server is the library's router served by `axum::serve` on a TCP port, as `main` serves it
//! without TLS; the kiosks are tasks of the same process, each with its own HTTP connection.

use anyhow::{Context, bail, ensure};
use axum::{
    body::Bytes,
    http::{Method, Request, StatusCode},
};
use chrono::{FixedOffset, TimeZone, Utc};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use linecheck_server::{AppState, auth::enroll_station, router};
use protocol::{
    BoundingBox, ClassThreshold, Detection, InspectionRecord, ModelRef, OperatorDecision,
    PROTOCOL_VERSION, PushRequest, PushResponse, SnapshotRef, verdict_for,
};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 50)]
    kiosks: usize,
    /// Inspections each kiosk has waiting (a day's backlog).
    #[arg(long, default_value_t = 2000)]
    records: usize,
    /// Records per push request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The size of each snapshot JPEG.
    #[arg(long, default_value_t = 16)]
    snapshot_kib: usize,
    /// A PostgreSQL database (empty); SQLite in a temporary folder otherwise.
    #[arg(long)]
    database_url: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A snapshot of `len` bytes: a JPEG header with a 1280x720 start-of-frame, then noise.
fn snapshot(len: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0xD0, 0x05, 0x00, 0x03,
    ];
    let start = bytes.len();
    bytes.resize(len.max(start + 2), 0);
    rng.fill_bytes(&mut bytes[start..]);
    bytes
}

fn record(
    device: Uuid,
    station: &str,
    sequence: u64,
    jpeg: &[u8],
    rng: &mut StdRng,
) -> InspectionRecord {
    let inspected_at = Utc.with_ymd_and_hms(2026, 11, 24, 6, 0, 0).unwrap()
        + chrono::TimeDelta::seconds(sequence as i64 * 14);
    let detections: Vec<Detection> = (0..rng.random_range(0..3))
        .map(|_| {
            let (x, y) = (
                rng.random_range(0.0..1200.0f32),
                rng.random_range(0.0..680.0f32),
            );
            Detection {
                class_id: rng.random_range(0..4),
                label: "scratch".into(),
                score: rng.random_range(0.25..1.0),
                bbox: BoundingBox {
                    x1: x,
                    y1: y,
                    x2: x + 50.0,
                    y2: y + 30.0,
                },
            }
        })
        .collect();
    let thresholds = vec![ClassThreshold {
        class_id: 1,
        threshold: 0.4,
    }];
    InspectionRecord {
        id: Uuid::from_u128(rng.random()),
        device_id: device,
        sequence,
        inspected_at,
        local_time: inspected_at.with_timezone(&FixedOffset::east_opt(3600).unwrap()),
        station: station.into(),
        line: "Line 2".into(),
        operator: "badge-1182".into(),
        part_serial: format!("SN-{sequence:06}"),
        lot: "LOT-77".into(),
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
            sha256: Sha256::digest(jpeg)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            byte_len: jpeg.len() as u64,
        }),
    }
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: String,
    token: &str,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

#[derive(Default)]
struct Latencies {
    pushes: Vec<Duration>,
    snapshots: Vec<Duration>,
}

/// One kiosk flushing its backlog: per batch, each snapshot uploaded, then one push.
async fn kiosk(
    number: usize,
    base: String,
    token: String,
    args: (usize, usize, usize),
) -> anyhow::Result<Latencies> {
    let (records, batch, snapshot_bytes) = args;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut rng = StdRng::seed_from_u64(number as u64);
    let device = Uuid::from_u128(0xD000 + number as u128);
    let station = format!("ST-{number:02}");
    let mut latencies = Latencies::default();
    let mut sequence = 0;
    while sequence < records as u64 {
        let mut pending = vec![];
        for _ in 0..batch.min(records - sequence as usize) {
            sequence += 1;
            let jpeg = snapshot(snapshot_bytes, &mut rng);
            let record = record(device, &station, sequence, &jpeg, &mut rng);
            let url = format!(
                "{base}/api/v1/snapshots/{}",
                record.snapshot.as_ref().expect("made with one").sha256
            );
            let started = Instant::now();
            let (status, body) = send(&client, Method::PUT, url, &token, jpeg).await?;
            latencies.snapshots.push(started.elapsed());
            ensure!(
                status == StatusCode::CREATED,
                "snapshot upload: {status} {body:?}"
            );
            pending.push(record);
        }
        let count = pending.len();
        let request = serde_json::to_vec(&PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device_id: device,
            records: pending,
        })?;
        let started = Instant::now();
        let (status, body) = send(
            &client,
            Method::POST,
            format!("{base}/api/v1/sync/push"),
            &token,
            request,
        )
        .await?;
        latencies.pushes.push(started.elapsed());
        ensure!(status == StatusCode::OK, "push: {status} {body:?}");
        let response: PushResponse = serde_json::from_slice(&body)?;
        let applied = response
            .results
            .iter()
            .filter(|r| r.status == protocol::PushStatus::Applied)
            .count();
        ensure!(applied == count, "push applied {applied} of {count}");
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let state = AppState::open(dir.path(), args.database_url.as_deref()).await?;
    let database = state.db.dialect.name();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = router(state.clone(), dir.path().join("dist"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut tokens = vec![];
    for number in 0..args.kiosks {
        tokens.push(enroll_station(&state.db.pool, &format!("ST-{number:02}")).await?);
    }
    let snapshot_bytes = args.snapshot_kib * 1024;
    eprintln!(
        "{} kiosks x {} inspections ({} per push, {} KiB snapshots) into {database}...",
        args.kiosks, args.records, args.batch, args.snapshot_kib
    );
    let started = Instant::now();
    let mut kiosks = tokio::task::JoinSet::new();
    for (number, token) in tokens.into_iter().enumerate() {
        kiosks.spawn(kiosk(
            number,
            base.clone(),
            token,
            (args.records, args.batch, snapshot_bytes),
        ));
    }
    let mut all = Latencies::default();
    while let Some(done) = kiosks.join_next().await {
        let latencies = done.context("a kiosk task")??;
        all.pushes.extend(latencies.pushes);
        all.snapshots.extend(latencies.snapshots);
    }
    let elapsed = started.elapsed().as_secs_f64();

    let total = args.kiosks * args.records;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inspections")
        .fetch_one(&state.db.pool)
        .await?;
    if stored != total as i64 {
        bail!("{stored} inspections stored, {total} sent");
    }
    all.pushes.sort();
    all.snapshots.sort();
    let megabytes = (total * snapshot_bytes) as f64 / (1024.0 * 1024.0);
    println!(
        "\ningest-bench: {} kiosks x {} inspections = {total} in {database}, {} per push, {} KiB \
         snapshots ({megabytes:.0} MiB)",
        args.kiosks, args.records, args.batch, args.snapshot_kib
    );
    println!("| measure | value |\n| --- | ---: |");
    println!("| wall time | {elapsed:.1} s |");
    println!("| inspections/s | {:.0} |", total as f64 / elapsed);
    println!("| snapshot MiB/s | {:.1} |", megabytes / elapsed);
    println!(
        "| push latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms ({} pushes) |",
        percentile(&all.pushes, 0.5),
        percentile(&all.pushes, 0.99),
        percentile(&all.pushes, 1.0),
        all.pushes.len()
    );
    println!(
        "| snapshot upload p50 / p99 | {:.1} / {:.1} ms ({} uploads) |",
        percentile(&all.snapshots, 0.5),
        percentile(&all.snapshots, 0.99),
        all.snapshots.len()
    );
    println!("| stored exactly once | {stored} of {total} |");
    state.db.close().await;
    Ok(())
}
