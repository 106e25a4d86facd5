//! The sync loop: the outbox to the server, exactly once (the contract is in `protocol::sync`).
//!
//! One loop per page. A pass uploads each batch's snapshots (content-addressed, idempotent), then
//! pushes the batch, then records the per-item results; a record leaves the outbox only when the
//! server says it is stored. Any failure leaves the outbox as it was, so the next pass resends:
//! the server answers a resend with `already_applied`. Passes run after each inspection
//! ([`wake`]), on the window's `online` event, every [`PERIOD_MS`], and after a failure with
//! exponential backoff and jitter.

use crate::{
    pull, quota,
    records::{self, AppliedResults},
    storage,
    sync_status::{self, SyncPhase},
};
use chrono::Utc;
use futures::{StreamExt, channel::mpsc, future};
use gloo_timers::future::TimeoutFuture;
use protocol::{
    InspectionRecord, MAX_PUSH_BYTES, PROTOCOL_VERSION, PushItemResult, PushRequest, PushResponse,
    PushStatus,
};
use std::{cell::RefCell, collections::HashSet};
use uuid::Uuid;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;

/// A pass with nothing failing runs again after this long, to pick up anything missed.
const PERIOD_MS: u32 = 30_000;
const BACKOFF_BASE_MS: f64 = 1_000.0;
/// The longest wait after failures: a server back from a restart is found within this.
const BACKOFF_CAP_MS: f64 = 30_000.0;
/// Records per push; batches are also kept below the server's byte limit.
const MAX_BATCH_RECORDS: u32 = 200;
/// Room in `MAX_PUSH_BYTES` for the request's envelope around the records.
const ENVELOPE_BYTES: usize = 4096;
const PUSH_URL: &str = "/api/v1/sync/push";

thread_local! {
    static WAKE: RefCell<Option<mpsc::UnboundedSender<()>>> = const { RefCell::new(None) };
    /// Snapshots the server confirmed storing during this page's life; snapshots are never
    /// deleted there, so they need no second upload.
    static UPLOADED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Starts the background sync loop once (after each inspection via `sync::wake()`, on the window
/// `online` event, and periodically; exponential backoff with jitter via gloo-timers). Later
/// calls do nothing.
pub fn start(db: idb::Database) {
    if WAKE.with(|w| w.borrow().is_some()) {
        return;
    }
    let (sender, wakes) = mpsc::unbounded();
    WAKE.with(|w| *w.borrow_mut() = Some(sender));
    if let Some(window) = web_sys::window() {
        let online = Closure::<dyn Fn()>::new(wake);
        let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        // The listener lives as long as the page.
        online.forget();
    }
    wasm_bindgen_futures::spawn_local(run(db, wakes));
}

/// Runs a pass now (or right after the one in progress): call it after saving an inspection or
/// new station settings.
pub fn wake() {
    WAKE.with(|w| {
        if let Some(sender) = &*w.borrow() {
            let _ = sender.unbounded_send(());
        }
    });
}

async fn run(db: idb::Database, mut wakes: mpsc::UnboundedReceiver<()>) {
    match quota::request_persistence().await {
        Ok(true) => {}
        Ok(false) => sync_status::update(|r| {
            r.storage = Some(
                "The browser may clear this tablet's storage when space runs low: install LineCheck as an app to keep it".into(),
            )
        }),
        Err(e) => sync_status::update(|r| r.storage = Some(format!("Storage: {e}"))),
    }
    let mut failures = 0;
    loop {
        let outcome = pass(&db).await;
        let delay = match outcome {
            Outcome::Done | Outcome::NoToken => {
                failures = 0;
                f64::from(PERIOD_MS)
            }
            Outcome::Offline | Outcome::Failed => {
                failures += 1;
                backoff_ms(failures)
            }
        };
        match quota::check(&db).await {
            Ok(Some(notice)) => sync_status::update(|r| r.storage = Some(notice.message())),
            Ok(None) => {}
            Err(e) => sync_status::update(|r| r.storage = Some(format!("Storage: {e}"))),
        }
        let timer = TimeoutFuture::new(delay as u32);
        future::select(wakes.next(), timer).await;
        // Wakes that came in meanwhile are all served by the next pass.
        while wakes.try_recv().is_ok() {}
    }
}

/// Full jitter over an exponentially growing window, so many kiosks coming back at once after a
/// server restart spread their retries.
fn backoff_ms(failures: u32) -> f64 {
    let window = (BACKOFF_BASE_MS * 2f64.powi(failures.min(16) as i32)).min(BACKOFF_CAP_MS);
    window / 2.0 + js_sys::Math::random() * window / 2.0
}

enum Outcome {
    Done,
    NoToken,
    Offline,
    Failed,
}

/// One pass over the outbox; publishes what it finds to the indicator.
async fn pass(db: &idb::Database) -> Outcome {
    let (phase, reason, outcome) = match drain(db).await {
        Ok(outcome) => return outcome,
        Err(Failure::Offline(reason)) => (SyncPhase::Offline, reason, Outcome::Offline),
        Err(Failure::Server(reason)) => (SyncPhase::Error, reason, Outcome::Failed),
    };
    sync_status::update(|r| {
        r.phase = phase;
        r.last_error = Some(reason);
    });
    if let Ok(pending) = records::pending_count(db).await {
        sync_status::update(|r| r.pending = pending);
    }
    outcome
}

pub(crate) enum Failure {
    /// The request did not reach the server, or no answer came back.
    Offline(String),
    /// The server (or the kiosk's own storage) said no; the reason is for the operator.
    Server(String),
}

impl From<String> for Failure {
    fn from(storage_error: String) -> Self {
        Failure::Server(storage_error)
    }
}

async fn drain(db: &idb::Database) -> Result<Outcome, Failure> {
    let pending = records::pending_count(db).await?;
    let token = storage::load_station(db)
        .await?
        .map(|s| s.token.trim().to_string())
        .unwrap_or_default();
    if token.is_empty() {
        sync_status::update(|r| {
            r.phase = SyncPhase::NoToken;
            r.pending = pending;
        });
        return Ok(Outcome::NoToken);
    }
    let device_id = records::device_id(db).await?;
    let mut max_records = MAX_BATCH_RECORDS;
    loop {
        let pending = records::pending_count(db).await?;
        sync_status::update(|r| {
            r.pending = pending;
            r.phase = if pending == 0 {
                SyncPhase::Synced
            } else {
                SyncPhase::Pending
            };
        });
        if pending == 0 {
            // The outbox is empty: now take what supervisors changed for this station.
            pull::pull(db, &token).await?;
            sync_status::update(|r| {
                r.last_success = Some(Utc::now());
                r.last_error = None;
            });
            return Ok(Outcome::Done);
        }
        let batch = records::outbox_batch(db, max_records, MAX_PUSH_BYTES - ENVELOPE_BYTES).await?;
        for record in &batch {
            upload_snapshot(db, &token, record).await?;
        }
        let results = match push(&token, device_id, &batch).await? {
            Pushed::Answered(results) => results,
            Pushed::TooLarge(reason) if batch.len() > 1 => {
                max_records = (batch.len() as u32 / 2).max(1);
                sync_status::update(|r| r.last_error = Some(reason));
                continue;
            }
            Pushed::TooLarge(reason) => {
                // One record the server will never take: kept as rejected, not resent forever.
                vec![PushItemResult {
                    id: batch[0].id,
                    status: PushStatus::Rejected {
                        reason,
                        retryable: false,
                    },
                }]
            }
        };
        let applied = records::apply_push_results(db, &results).await?;
        for (id, _) in &applied.retry {
            // The server may have lost the snapshot (restored from a backup): upload it again.
            if let Some(snapshot) = batch
                .iter()
                .find(|r| r.id == *id)
                .and_then(|r| r.snapshot.as_ref())
            {
                UPLOADED.with(|u| u.borrow_mut().remove(&snapshot.sha256));
            }
        }
        report_rejections(&applied);
        if applied.stored == 0 && applied.rejected.is_empty() {
            let reason = applied
                .retry
                .first()
                .map(|(id, reason)| format!("record {id} not accepted yet: {reason}"))
                .unwrap_or_else(|| "the server answered without results".into());
            return Err(Failure::Server(reason));
        }
    }
}

fn report_rejections(applied: &AppliedResults) {
    if let Some((id, reason)) = applied.rejected.last() {
        let refused = applied.rejected.len() as u32;
        sync_status::update(|r| {
            let before = r.rejected.as_ref().map_or(0, |(count, _)| *count);
            r.rejected = Some((before + refused, format!("{id}: {reason}")));
        });
    }
}

/// The server's `{"error": reason}`, or the body as it came.
fn reason_of(status: u16, body: &str) -> String {
    let reason = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    format!("the server answered {status}: {reason}")
}

/// What an error status means for the operator.
pub(crate) fn failure_for(status: u16, body: &str) -> Failure {
    let reason = reason_of(status, body);
    Failure::Server(match status {
        401 => format!(
            "{reason}. Enter this station's token (from `linecheck-server enroll-station`) in setup"
        ),
        403 => {
            format!("{reason}. This token belongs to another station or tablet: enroll this one")
        }
        409 => format!("{reason}. Update the kiosk (reload it while online)"),
        _ => reason,
    })
}

pub(crate) async fn fetch(
    method: &str,
    url: &str,
    token: &str,
    content_type: &str,
    body: &JsValue,
) -> Result<(u16, String), Failure> {
    let offline = |e: JsValue| {
        Failure::Offline(format!(
            "cannot reach the server: {}",
            e.as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_default()
        ))
    };
    let headers = web_sys::Headers::new().map_err(offline)?;
    headers
        .set("Authorization", &format!("Bearer {token}"))
        .map_err(offline)?;
    headers.set("Content-Type", content_type).map_err(offline)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers);
    init.set_body(body);
    init.set_cache(web_sys::RequestCache::NoStore);
    let window = web_sys::window().ok_or_else(|| Failure::Server("no window".into()))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(offline)?
        .unchecked_into();
    let text = JsFuture::from(response.text().map_err(offline)?)
        .await
        .map_err(offline)?
        .as_string()
        .unwrap_or_default();
    Ok((response.status(), text))
}

async fn upload_snapshot(
    db: &idb::Database,
    token: &str,
    record: &InspectionRecord,
) -> Result<(), Failure> {
    let Some(snapshot) = &record.snapshot else {
        return Ok(());
    };
    if UPLOADED.with(|u| u.borrow().contains(&snapshot.sha256)) {
        return Ok(());
    }
    let Some(jpeg) = records::snapshot_jpeg(db, &snapshot.sha256).await? else {
        // Never pruned while pending; the push will say what the server thinks.
        return Ok(());
    };
    let url = format!("/api/v1/snapshots/{}", snapshot.sha256);
    let body = js_sys::Uint8Array::from(jpeg.as_slice());
    match fetch("PUT", &url, token, "image/jpeg", &body).await? {
        (200 | 201, _) => {
            UPLOADED.with(|u| u.borrow_mut().insert(snapshot.sha256.clone()));
            Ok(())
        }
        (status, body) => Err(failure_for(status, &body)),
    }
}

enum Pushed {
    Answered(Vec<PushItemResult>),
    /// 413: the batch is over the server's limit.
    TooLarge(String),
}

async fn push(token: &str, device_id: Uuid, batch: &[InspectionRecord]) -> Result<Pushed, Failure> {
    let request = PushRequest {
        protocol_version: PROTOCOL_VERSION,
        device_id,
        records: batch.to_vec(),
    };
    let body = serde_json::to_string(&request)
        .map_err(|e| Failure::Server(format!("encoding the push: {e}")))?;
    let (status, text) = fetch(
        "POST",
        PUSH_URL,
        token,
        "application/json",
        &JsValue::from_str(&body),
    )
    .await?;
    match status {
        200 => {
            let response: PushResponse = serde_json::from_str(&text).map_err(|e| {
                Failure::Server(format!("the server's answer is unreadable ({e}): {text}"))
            })?;
            Ok(Pushed::Answered(response.results))
        }
        413 => Ok(Pushed::TooLarge(reason_of(status, &text))),
        // A gateway in front of a restarting server: as good as offline.
        502..=504 => Err(Failure::Offline(reason_of(status, &text))),
        _ => Err(failure_for(status, &text)),
    }
}
