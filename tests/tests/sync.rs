//! The kiosk's sync against the real server binary: inspections made in a headless Chromium
//! while the server is down, and while it is SIGKILLed and restarted, all reach its database
//! exactly once, with their snapshots; a kiosk without a valid token keeps everything and says so.

use linecheck_e2e::{
    Browser, Server, enroll_station,
    kiosk::{
        inspect_part, open_kiosk, open_screen, save_setup, show_app_shell, stored_inspections,
        wait_until_detector_ready,
    },
};
use serde_json::Value;
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

const STATION: &str = "ST-07";
/// The kiosk's longest backoff is 30 s (with jitter): a restarted server is found within it.
const SYNC: Duration = Duration::from_secs(120);
/// A pass that a save or an `online` event started is done well within this (no backoff).
const WOKEN: Duration = Duration::from_secs(10);
/// The first analysed frame after the detector is ready: seconds on SwiftShader or the CPU.
const FIRST_FRAME: Duration = Duration::from_secs(120);

/// Waits until the operator screen can inspect: the detector loaded and a frame analysed.
async fn ready_to_inspect(browser: &Browser) -> anyhow::Result<()> {
    wait_until_detector_ready(browser).await?;
    open_screen(browser, "inspect").await?;
    browser.wait_for("#inspect:enabled", FIRST_FRAME).await
}

/// The indicator's state and pending count.
async fn sync_status(browser: &Browser) -> anyhow::Result<(String, u64)> {
    let status = browser
        .eval(
            "const el = document.querySelector('#sync-status');
             return el ? [el.dataset.state, Number(el.dataset.pending)] : null;",
        )
        .await?;
    let state = status[0].as_str().unwrap_or_default().to_string();
    Ok((state, status[1].as_u64().unwrap_or(u64::MAX)))
}

/// Waits until the indicator shows `state` with `pending` records in the outbox.
async fn wait_for_sync_status(
    browser: &Browser,
    state: &str,
    pending: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = sync_status(browser).await?;
        if now == (state.to_string(), pending) {
            return Ok(());
        }
        if Instant::now() > deadline {
            // What the sync loop reads its token from, to tell a lost setup save from a lost wake.
            let stored_token = browser
                .eval_async(
                    "const db = await new Promise((ok, fail) => {
                         const r = indexedDB.open('linecheck'); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
                     });
                     const store = db.transaction('settings').objectStore('settings');
                     const station = await new Promise((ok) => { store.get('station').onsuccess = (e) => ok(e.target.result); });
                     db.close();
                     return station ? (station.token ?? station.get?.('token') ?? null) : null;",
                )
                .await?;
            anyhow::bail!(
                "#sync-status is {now:?} after {timeout:?}, not ({state:?}, {pending}): {} \
                 (stored token {stored_token})",
                browser.text("#sync-status").await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_unsent_inspection_survives_the_browser_killed_right_after_confirming()
-> anyhow::Result<()> {
    let (server, token) = enrolled_server()?;
    let browser = open_kiosk(&server).await?;
    set_up_station(&browser, &token).await?;
    ready_to_inspect(&browser).await?;
    // The server is down, so the inspection is still in the outbox when the browser dies.
    let addr = server.addr();
    let data_dir = server.kill();
    inspect_part(&browser, "SN-1", "#confirm").await?;
    let saved = kiosk_inspections(&browser).await?;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].1, "Pending");
    let profile = browser.crash();

    let server = Server::start_at(&addr, data_dir)?;
    let browser = Browser::start_with_profile(profile).await?;
    show_app_shell(&browser, &server.url).await?;
    assert_eq!(kiosk_inspections(&browser).await?[0].0, saved[0].0);
    wait_for_sync_status(&browser, "synced", 0, WOKEN).await?;
    let stored = server_inspections(&server).await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, saved[0].0);
    browser.close().await
}

/// Each inspection in the kiosk's IndexedDB: its id and sync state (`Pending`, `Synced`, ...).
async fn kiosk_inspections(browser: &Browser) -> anyhow::Result<Vec<(String, String)>> {
    Ok(stored_inspections(browser)
        .await?
        .iter()
        .map(|row| {
            let state = match &row["sync"] {
                Value::String(state) => state.clone(),
                Value::Object(state) => state.keys().next().cloned().unwrap_or_default(),
                other => other.to_string(),
            };
            (
                row["record"]["id"].as_str().unwrap_or_default().to_string(),
                state,
            )
        })
        .collect())
}

/// One inspection as the server stored it.
#[derive(Debug, PartialEq)]
struct ServerInspection {
    id: String,
    device_id: String,
    sequence: i64,
    snapshot_sha256: String,
}

async fn server_inspections(server: &Server) -> anyhow::Result<Vec<ServerInspection>> {
    let db = linecheck_server::open_database(server.data_dir.path(), None).await?;
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, device_id, sequence, snapshot_sha256 FROM inspections ORDER BY sequence",
    )
    .fetch_all(&db.pool)
    .await?;
    db.close().await;
    Ok(rows
        .into_iter()
        .map(
            |(id, device_id, sequence, snapshot_sha256)| ServerInspection {
                id,
                device_id,
                sequence,
                snapshot_sha256: snapshot_sha256.unwrap_or_default(),
            },
        )
        .collect())
}

/// A server with `STATION` enrolled, and its token.
fn enrolled_server() -> anyhow::Result<(Server, String)> {
    let data_dir = tempfile::tempdir()?;
    let token = enroll_station(data_dir.path(), STATION)?;
    Ok((Server::start_with_data(data_dir)?, token))
}

async fn set_up_station(browser: &Browser, token: &str) -> anyhow::Result<()> {
    save_setup(
        browser,
        &[
            ("#station", STATION),
            ("#line", "Assembly 1"),
            ("#operator", "badge 4410"),
            ("#station-token", token),
        ],
    )
    .await
}

/// Asks the kiosk to sync now, as the browser does when the network comes back.
async fn announce_online(browser: &Browser) -> anyhow::Result<()> {
    browser
        .eval("window.dispatchEvent(new Event('online')); return null;")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_backlog_reaches_the_server_exactly_once_across_server_crashes() -> anyhow::Result<()> {
    let (server, token) = enrolled_server()?;
    let browser = open_kiosk(&server).await?;
    set_up_station(&browser, &token).await?;
    ready_to_inspect(&browser).await?;

    // A save wakes the sync loop: online, the inspection is on the server within seconds.
    inspect_part(&browser, "SN-0", "#confirm").await?;
    let deadline = Instant::now() + WOKEN;
    while server_inspections(&server).await?.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "SN-0 not on the server after {WOKEN:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_sync_status(&browser, "synced", 0, WOKEN).await?;

    // The server dies as in a power cut; the line goes on inspecting.
    let addr = server.addr();
    let data_dir = server.kill();
    let serials = ["SN-1", "SN-2", "SN-3", "SN-4", "SN-5"];
    for serial in serials {
        inspect_part(&browser, serial, "#confirm").await?;
    }
    wait_for_sync_status(&browser, "offline", serials.len() as u64, SYNC).await?;

    // Back on the same address; then killed again just as the kiosk starts sending, so a push
    // may be cut off before or after its commit; then back for good.
    let server = Server::start_at(&addr, data_dir)?;
    announce_online(&browser).await?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let server = server.crash_and_restart()?;
    announce_online(&browser).await?;
    wait_for_sync_status(&browser, "synced", 0, SYNC).await?;

    let stored = server_inspections(&server).await?;
    let kiosk = kiosk_inspections(&browser).await?;
    assert_eq!(stored.len(), 1 + serials.len(), "{stored:#?}");
    let sequences: Vec<i64> = stored.iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);
    let device_ids: BTreeSet<&str> = stored.iter().map(|s| s.device_id.as_str()).collect();
    assert_eq!(device_ids.len(), 1, "one kiosk, one device id");
    let server_ids: BTreeSet<&str> = stored.iter().map(|s| s.id.as_str()).collect();
    let kiosk_ids: BTreeSet<&str> = kiosk.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(server_ids, kiosk_ids);
    assert!(
        kiosk.iter().all(|(_, state)| state == "Synced"),
        "{kiosk:?}"
    );
    for inspection in &stored {
        let sha = &inspection.snapshot_sha256;
        let path = server
            .data_dir
            .path()
            .join("snapshots")
            .join(&sha[..2])
            .join(sha);
        assert!(
            path.is_file(),
            "snapshot {sha} of {inspection:?} is missing"
        );
    }
    browser.close().await
}

#[tokio::test]
async fn without_a_valid_token_or_when_refused_the_kiosk_keeps_its_inspections_and_says_why()
-> anyhow::Result<()> {
    let (server, token) = enrolled_server()?;
    let browser = open_kiosk(&server).await?;
    set_up_station(&browser, "").await?;
    ready_to_inspect(&browser).await?;
    inspect_part(&browser, "SN-1", "#confirm").await?;
    wait_for_sync_status(&browser, "no-token", 1, SYNC).await?;

    // Saving the setup wakes the sync loop: no waiting for its period.
    set_up_station(&browser, "not-a-token").await?;
    wait_for_sync_status(&browser, "error", 1, WOKEN).await?;
    let text = browser.text("#sync-status").await?;
    assert!(text.contains("401") && text.contains("token"), "{text}");

    set_up_station(&browser, &token).await?;
    wait_for_sync_status(&browser, "synced", 0, WOKEN).await?;
    assert_eq!(server_inspections(&server).await?.len(), 1);

    // A kiosk bug changes the stored record and queues it again: the server refuses the
    // different content for good; the kiosk keeps the record, marks it and shows why.
    browser
        .eval_async(
            "const db = await new Promise((ok, fail) => {
                 const r = indexedDB.open('linecheck'); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error);
             });
             const store = db.transaction('inspections', 'readwrite').objectStore('inspections');
             const [row] = await new Promise((ok) => { store.getAll().onsuccess = (e) => ok(e.target.result); });
             row.record.lot = 'changed after sync';
             row.sync = 'Pending';
             row.outbox = row.sequence;
             await new Promise((ok) => { store.put(row, row.record.id).onsuccess = ok; });
             db.close();
             return null;",
        )
        .await?;
    announce_online(&browser).await?;
    browser
        .wait_for("#sync-rejected[data-rejected='1']", WOKEN)
        .await?;
    let text = browser.text("#sync-rejected").await?;
    assert!(text.contains("different content"), "{text}");
    wait_for_sync_status(&browser, "synced", 0, WOKEN).await?;
    let kiosk = kiosk_inspections(&browser).await?;
    assert_eq!(kiosk.len(), 1);
    assert_eq!(kiosk[0].1, "Rejected");
    assert_eq!(server_inspections(&server).await?.len(), 1);
    browser.close().await
}
