//! Seeded simulation of kiosks draining their outboxes through the real router, on a real SQLite
//! file and on a real PostgreSQL database, while requests are lost before the server sees them, responses are lost after it
//! committed, requests are sent twice or cancelled mid-flight, batches come in any order, the
//! server restarts, and PostgreSQL drops every connection under the running server as its restart
//! would. However the faults fall, every record must end up stored exactly once.
//!
//! `LINECHECK_SIM_SEED=N` replays one run; `LINECHECK_SIM_RUNS=N` changes how many run.

mod common;
mod database;

use axum::http::StatusCode;
use common::{Server, jpeg, record, with_snapshot};
use database::{Backend, on_both_databases};
use protocol::{InspectionRecord, PROTOCOL_VERSION, PushRequest, PushResponse, PushStatus};
use rand::{
    Rng, SeedableRng,
    rngs::StdRng,
    seq::{IndexedRandom, SliceRandom},
};
use sqlx::Connection;
use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::pin,
    task::Poll,
};
use uuid::Uuid;

const DEFAULT_RUNS: u64 = 1000;
/// Each PostgreSQL round trip costs more than SQLite's in-process call; fewer runs keep the test
/// suite fast while still exercising every fault (see the counts checked at the end).
const DEFAULT_POSTGRES_RUNS: u64 = 300;
/// A run that has not drained by then is stuck: a record the server never takes.
const MAX_STEPS: usize = 2000;

struct Kiosk {
    device: Uuid,
    station: String,
    token: String,
    outbox: Vec<InspectionRecord>,
    /// Acknowledged records, which a kiosk may still resend (a retry racing its own success).
    acked: Vec<InspectionRecord>,
    /// Snapshots the kiosk saw the server confirm, by hash.
    uploaded: HashSet<String>,
    images: HashMap<String, Vec<u8>>,
}

/// What the network does to one request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Lost on the way: the server never sees it.
    DropRequest,
    /// The server handles it; the answer never arrives.
    DropResponse,
    /// Sent twice (a retry after a timeout), both answers arrive.
    Duplicate,
    /// The connection breaks while the server works: the handler is dropped after `polls` polls.
    Cancel {
        polls: usize,
    },
}

fn fault(rng: &mut StdRng) -> Fault {
    match rng.random_range(0..100) {
        0..10 => Fault::DropRequest,
        10..25 => Fault::DropResponse,
        25..35 => Fault::Duplicate,
        35..45 => Fault::Cancel {
            polls: rng.random_range(0..8),
        },
        _ => Fault::None,
    }
}

/// Polls `future` at most `polls + 1` times, then drops it as a broken connection would.
async fn cancel_after<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut left = polls;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending if left == 0 => Poll::Ready(None),
        Poll::Pending => {
            left -= 1;
            Poll::Pending
        }
    })
    .await
}

/// How often each thing happened over all runs, so the test notices when it stops exercising one.
#[derive(Debug, Default)]
struct Stats {
    dropped_requests: u64,
    dropped_responses: u64,
    duplicates: u64,
    cancelled_midway: u64,
    restarts: u64,
    /// PostgreSQL only: the connections of a running server closed under it.
    database_restarts: u64,
    already_applied: u64,
    waiting_for_snapshot: u64,
}

/// The answers that reach the kiosk.
async fn send_with<T, F: Future<Output = T>>(
    fault: Fault,
    stats: &mut Stats,
    send: impl Fn() -> F,
) -> Vec<T> {
    match fault {
        Fault::None => vec![send().await],
        Fault::DropRequest => {
            stats.dropped_requests += 1;
            vec![]
        }
        Fault::DropResponse => {
            stats.dropped_responses += 1;
            send().await;
            vec![]
        }
        Fault::Duplicate => {
            stats.duplicates += 1;
            vec![send().await, send().await]
        }
        Fault::Cancel { polls } => {
            if cancel_after(send(), polls).await.is_none() {
                stats.cancelled_midway += 1;
            }
            vec![]
        }
    }
}

async fn new_kiosks(server: &Server, seed: u64, rng: &mut StdRng) -> Vec<Kiosk> {
    let mut kiosks = vec![];
    for k in 0..rng.random_range(2..=4u64) {
        let station = format!("ST-{seed}-{k}");
        let device = Uuid::from_u128(u128::from(seed) << 8 | u128::from(k));
        let mut kiosk = Kiosk {
            device,
            token: server.enroll(&station).await,
            station,
            outbox: vec![],
            acked: vec![],
            uploaded: HashSet::new(),
            images: HashMap::new(),
        };
        let mut sequence = rng.random_range(1..1000);
        for _ in 0..rng.random_range(1..=8) {
            let mut r = record(
                Uuid::from_u128(rng.random()),
                device,
                &kiosk.station,
                sequence,
            );
            if rng.random_bool(0.3) {
                let image = jpeg(rng.random());
                r = with_snapshot(r, &image);
                kiosk
                    .images
                    .insert(r.snapshot.as_ref().unwrap().sha256.clone(), image);
            }
            kiosk.outbox.push(r);
            // Sequences only increase, with gaps where the kiosk discarded a draft.
            sequence += rng.random_range(1..=3);
        }
        kiosks.push(kiosk);
    }
    kiosks
}

/// One kiosk's sync attempt: upload missing snapshots, push a batch, handle what comes back.
async fn sync_once(
    server: &Server,
    kiosk: &mut Kiosk,
    applied: &mut HashMap<Uuid, usize>,
    stats: &mut Stats,
    rng: &mut StdRng,
) {
    let size = rng.random_range(1..=4);
    let mut batch: Vec<InspectionRecord> =
        kiosk.outbox.choose_multiple(rng, size).cloned().collect();
    if !kiosk.acked.is_empty() && rng.random_bool(0.2) {
        batch.push(kiosk.acked[rng.random_range(0..kiosk.acked.len())].clone());
    }
    batch.shuffle(rng);

    for sha in batch
        .iter()
        .filter_map(|r| r.snapshot.as_ref())
        .map(|s| &s.sha256)
    {
        if kiosk.uploaded.contains(sha) {
            continue;
        }
        let image = &kiosk.images[sha];
        for status in send_with(fault(rng), stats, || {
            server.put_snapshot(&kiosk.token, image)
        })
        .await
        {
            assert!(
                matches!(status, StatusCode::CREATED | StatusCode::OK),
                "{status}"
            );
            kiosk.uploaded.insert(sha.clone());
        }
    }

    let request = PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device_id: kiosk.device,
        records: batch.clone(),
    };
    for (status, json) in send_with(fault(rng), stats, || server.push(&kiosk.token, &request)).await
    {
        assert_eq!(status, StatusCode::OK, "{json}");
        let response: PushResponse = serde_json::from_value(json).unwrap();
        let ids: Vec<Uuid> = response.results.iter().map(|r| r.id).collect();
        let sent: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
        assert_eq!(ids, sent, "one result per record, in order");
        for (result, r) in response.results.iter().zip(&batch) {
            match &result.status {
                PushStatus::Applied => *applied.entry(r.id).or_default() += 1,
                PushStatus::AlreadyApplied => stats.already_applied += 1,
                PushStatus::Rejected {
                    reason,
                    retryable: true,
                } => {
                    // Only a snapshot whose upload never reached the server may hold a record back.
                    let sha = &r.snapshot.as_ref().expect(reason).sha256;
                    assert!(!kiosk.uploaded.contains(sha), "{reason}");
                    assert!(reason.contains("upload the snapshot first"), "{reason}");
                    stats.waiting_for_snapshot += 1;
                }
                PushStatus::Rejected { reason, .. } => panic!("{} rejected: {reason}", r.id),
            }
            if result.status.is_stored()
                && let Some(i) = kiosk.outbox.iter().position(|o| o.id == r.id)
            {
                kiosk.acked.push(kiosk.outbox.remove(i));
            }
        }
    }
}

/// What a PostgreSQL restart does to a running server: every connection to its database closes
/// under it, idle or in a transaction. The pool must replace them; a transaction cut off rolls back.
async fn drop_connections(url: &str) {
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let others =
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let pids: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT pid {others}")))
        .fetch_all(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
        .bind(&pids)
        .execute(&mut admin)
        .await
        .unwrap();
    // Termination is only signalled: wait until they are gone, as after a real restart, so the
    // next request cannot be handed a connection that is still about to die.
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&pids)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    admin.close().await.unwrap();
}

async fn run(server: &mut Server, seed: u64, stats: &mut Stats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kiosks = new_kiosks(server, seed, &mut rng).await;
    let sent: Vec<InspectionRecord> = kiosks.iter().flat_map(|k| k.outbox.clone()).collect();
    let mut applied = HashMap::new();
    let mut steps = 0;
    while kiosks.iter().any(|k| !k.outbox.is_empty()) {
        steps += 1;
        assert!(
            steps <= MAX_STEPS,
            "outboxes not drained after {MAX_STEPS} steps"
        );
        if rng.random_bool(0.03) {
            server.restart().await;
            stats.restarts += 1;
        }
        if rng.random_bool(0.02)
            && let Some(url) = &server.database_url
        {
            drop_connections(url).await;
            stats.database_restarts += 1;
        }
        let pending: Vec<usize> = (0..kiosks.len())
            .filter(|&k| !kiosks[k].outbox.is_empty())
            .collect();
        let k = pending[rng.random_range(0..pending.len())];
        sync_once(server, &mut kiosks[k], &mut applied, stats, &mut rng).await;
    }

    // No record was reported applied twice: a repeat must always be "already applied".
    for (id, times) in &applied {
        assert_eq!(*times, 1, "record {id} was applied {times} times");
    }
    // Stored exactly once each, with the content that was sent: nothing lost, nothing doubled.
    let mut stored = vec![];
    for kiosk in &kiosks {
        stored.extend(server.stored_records(kiosk.device).await);
    }
    let mut expected = sent;
    expected.sort_by_key(|r| {
        (
            kiosks.iter().position(|k| k.device == r.device_id),
            r.sequence,
        )
    });
    assert_eq!(stored.len(), expected.len(), "stored rows vs sent records");
    assert!(
        stored == expected,
        "stored records differ from the sent ones"
    );
    // No stored record points at a snapshot the server does not have.
    for snapshot in stored.iter().filter_map(|r| r.snapshot.as_ref()) {
        let len = server
            .state
            .snapshots
            .stored_len(&snapshot.sha256)
            .await
            .unwrap();
        assert_eq!(len, Some(snapshot.byte_len), "snapshot {}", snapshot.sha256);
    }
    // The cursor is the highest sequence each device sent.
    for kiosk in &kiosks {
        let highest: i64 =
            sqlx::query_scalar("SELECT highest_sequence FROM device_cursors WHERE device_id = $1")
                .bind(kiosk.device.to_string())
                .fetch_one(&server.state.db.pool)
                .await
                .unwrap();
        let sent_max = kiosk.acked.iter().map(|r| r.sequence).max().unwrap();
        assert_eq!(highest as u64, sent_max);
    }
}

/// Names the seed of a failing run, whatever assertion failed in it.
struct SeedReport(u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let seed = self.0;
            eprintln!(
                "simulation seed {seed} failed; replay it with \
                 LINECHECK_SIM_SEED={seed} cargo test -p linecheck-server --test sync_simulation"
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

async fn every_record_is_stored_exactly_once_whatever_the_network_and_server_do(backend: Backend) {
    let default_runs = match backend {
        Backend::Sqlite => DEFAULT_RUNS,
        Backend::Postgres => DEFAULT_POSTGRES_RUNS,
    };
    let seeds: Vec<u64> = match env_u64("LINECHECK_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("LINECHECK_SIM_RUNS").unwrap_or(default_runs)).collect(),
    };
    // One database for all runs (each run has its own stations and devices): opening and
    // migrating a fresh one per run would cost more than the runs themselves.
    let mut server = Server::start(backend).await;
    let mut stats = Stats::default();
    let started = std::time::Instant::now();
    for &seed in &seeds {
        let _report = SeedReport(seed);
        run(&mut server, seed, &mut stats).await;
    }
    println!(
        "{} seeded runs in {:.1?}: {stats:?}",
        seeds.len(),
        started.elapsed()
    );
    if seeds.len() >= 100 {
        let mut counts = vec![
            stats.dropped_requests,
            stats.dropped_responses,
            stats.duplicates,
            stats.cancelled_midway,
            stats.restarts,
            stats.already_applied,
            stats.waiting_for_snapshot,
        ];
        if backend == Backend::Postgres {
            counts.push(stats.database_restarts);
        }
        assert!(
            counts.iter().all(|&n| n > 0),
            "a case never happened: {stats:?}"
        );
    }
}

on_both_databases!(every_record_is_stored_exactly_once_whatever_the_network_and_server_do);
