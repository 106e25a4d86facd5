//! The kiosk's IndexedDB database. Everything the station needs across reloads lives here.
//!
//! Stores (version 2):
//! - `settings`: the station settings under `station`, the device identity and its sequence
//!   counter under `device` (see `records.rs`).
//! - `inspections`: one row per inspection, keyed by the record id. Indexes: `sequence` (unique,
//!   for newest-first history), `outbox` and `prunable` (sparse: a row is in them only while it
//!   waits for the server, or while it is synced and still holds its snapshot), `snapshot`
//!   (the snapshot's SHA-256, to see every record sharing one JPEG).
//! - `snapshots`: JPEG bytes (`Uint8Array`) keyed by their lower-case hex SHA-256.

use crate::{detection::BackendChoice, i18n::Language};
use chrono::{DateTime, Utc};
use idb::request::Request;
use idb::{
    Database, DatabaseEvent, Event, Factory, IndexParams, KeyPath, ObjectStoreParams, Transaction,
    TransactionMode, TransactionResult,
};
use protocol::{ClassThreshold, Correction, ModelAssignment};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

const DATABASE: &str = "linecheck";
/// Bump with a new branch in `upgrade` whenever stores or indexes change.
const VERSION: u32 = 2;
pub(crate) const SETTINGS: &str = "settings";
pub(crate) const INSPECTIONS: &str = "inspections";
pub(crate) const SNAPSHOTS: &str = "snapshots";
pub(crate) const BY_SEQUENCE: &str = "sequence";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const PRUNABLE: &str = "prunable";
pub(crate) const BY_SNAPSHOT: &str = "snapshot";
const STATION_KEY: &str = "station";
const BACKEND_KEY: &str = "backend";
const SHIFT_KEY: &str = "shift_started_at";
const PULL_CURSOR_KEY: &str = "pull_cursor";
const ASSIGNED_MODEL_KEY: &str = "assigned_model";
const CORRECTIONS_KEY: &str = "corrections";

/// Who and where this kiosk is, how it inspects, and the token it syncs with. Fields added later
/// get their defaults when older stored settings are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StationSettings {
    pub station: String,
    pub line: String,
    pub operator: String,
    /// The station token a supervisor's enrollment gave; empty until then. Without it the kiosk
    /// keeps every record and does not push.
    pub token: String,
    pub language: Language,
    /// A `deviceId` from `enumerateDevices`; `None` asks for the rear camera.
    pub camera_id: Option<String>,
    /// Requested camera resolution; the camera may deliver the nearest it has.
    pub resolution: (u32, u32),
    /// A detection at or above its class threshold fails the part.
    pub default_threshold: f32,
    pub thresholds: Vec<ClassThreshold>,
}

impl Default for StationSettings {
    fn default() -> Self {
        Self {
            station: String::new(),
            line: String::new(),
            operator: String::new(),
            token: String::new(),
            language: Language::default(),
            camera_id: None,
            resolution: (1280, 720),
            // The shipped model's operating point, calibrated by `models/evaluate.py`
            // (models/MODEL_CARD.md).
            default_threshold: 0.4,
            thresholds: Vec::new(),
        }
    }
}

impl StationSettings {
    pub fn threshold_of(&self, class_id: u32) -> f32 {
        protocol::threshold_for(&self.thresholds, self.default_threshold, class_id)
    }

    /// Station, line and operator: what every record must name.
    pub fn is_complete(&self) -> bool {
        [&self.station, &self.line, &self.operator]
            .iter()
            .all(|v| !v.trim().is_empty())
    }
}

pub(crate) fn error(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

pub async fn open() -> Result<Database, String> {
    open_named(DATABASE).await
}

/// Opens (creating or upgrading) the database `name`; tests use their own names.
pub async fn open_named(name: &str) -> Result<Database, String> {
    let factory = Factory::new().map_err(|e| error("IndexedDB is not available", e))?;
    let mut request = factory
        .open(name, Some(VERSION))
        .map_err(|e| error("opening the database", e))?;
    request.on_upgrade_needed(|event| {
        let Ok(db) = event.database() else { return };
        // Aborting the upgrade transaction fails `open` and keeps the old version whole, instead
        // of opening a database that lacks a store.
        if upgrade(&db).is_err()
            && let Some(tx) = event
                .target()
                .ok()
                .and_then(|request| request.transaction())
        {
            let _ = tx.abort();
        }
    });
    request.await.map_err(|e| error("opening the database", e))
}

/// Creates what a database of an older version lacks; each step runs only where it is missing.
fn upgrade(db: &Database) -> Result<(), idb::Error> {
    let has = |name: &str| db.store_names().iter().any(|s| s == name);
    if !has(SETTINGS) {
        db.create_object_store(SETTINGS, ObjectStoreParams::new())?;
    }
    if !has(INSPECTIONS) {
        let store = db.create_object_store(INSPECTIONS, ObjectStoreParams::new())?;
        let mut unique = IndexParams::new();
        unique.unique(true);
        store.create_index(BY_SEQUENCE, KeyPath::new_single("sequence"), Some(unique))?;
        store.create_index(OUTBOX, KeyPath::new_single("outbox"), None)?;
        store.create_index(PRUNABLE, KeyPath::new_single("prunable"), None)?;
        store.create_index(
            BY_SNAPSHOT,
            KeyPath::new_single("record.snapshot.sha256"),
            None,
        )?;
    }
    if !has(SNAPSHOTS) {
        db.create_object_store(SNAPSHOTS, ObjectStoreParams::new())?;
    }
    Ok(())
}

/// A read-write transaction that completes only once its data is flushed to disk
/// (`durability: "strict"`), for writes that must survive a power cut, not only a tab crash:
/// browsers default to relaxed durability. idb 0.6 opens transactions without options, so the
/// raw connection comes from a throwaway read-only transaction, which ends by itself.
pub(crate) fn strict_transaction(
    db: &Database,
    stores: &[&str],
) -> Result<Transaction, idb::Error> {
    let probe: web_sys::IdbTransaction = db.transaction(stores, TransactionMode::ReadOnly)?.into();
    let raw: JsValue = probe.db().into();
    let failed = idb::Error::TransactionOpenFailed;
    let open: js_sys::Function = js_sys::Reflect::get(&raw, &"transaction".into())
        .map_err(failed)?
        .unchecked_into();
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"durability".into(), &"strict".into()).map_err(failed)?;
    let names: js_sys::Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    let tx = open
        .call3(&raw, &names, &"readwrite".into(), &options)
        .map_err(failed)?;
    Ok(tx.unchecked_into::<web_sys::IdbTransaction>().into())
}

/// Waits for `tx` to commit, so the caller may tell the operator "saved".
pub(crate) async fn commit(tx: Transaction, context: &str) -> Result<(), String> {
    match tx.commit().map_err(|e| error(context, e))?.await {
        Ok(TransactionResult::Committed) => Ok(()),
        Ok(TransactionResult::Aborted) => Err(format!("{context}: the transaction was aborted")),
        Err(e) => Err(describe(context, e)),
    }
}

/// An IndexedDB error in words; a full disk gets its own, since only the operator can act on it.
pub(crate) fn describe(context: &str, e: idb::Error) -> String {
    if is_quota_error(&e) {
        format!("{context}: the tablet's storage is full ({e})")
    } else {
        error(context, e)
    }
}

pub(crate) fn is_quota_error(e: &idb::Error) -> bool {
    matches!(e, idb::Error::DomException(d) if d.name() == "QuotaExceededError")
        || e.to_string().contains("QuotaExceeded")
}

/// Reads the `settings` value under `key`, decoded.
pub(crate) async fn read_setting<T: for<'de> Deserialize<'de>>(
    db: &Database,
    key: &str,
) -> Result<Option<T>, String> {
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadOnly)
        .map_err(|e| error("reading settings", e))?;
    let store = tx
        .object_store(SETTINGS)
        .map_err(|e| error("reading settings", e))?;
    let value: Option<JsValue> = store
        .get(JsValue::from_str(key))
        .map_err(|e| error("reading settings", e))?
        .await
        .map_err(|e| error("reading settings", e))?;
    from_stored(value)
}

fn from_stored<T: for<'de> Deserialize<'de>>(value: Option<JsValue>) -> Result<Option<T>, String> {
    value
        .map(|v| {
            serde_wasm_bindgen::from_value(v)
                .map_err(|e| error("stored settings are unreadable", e))
        })
        .transpose()
}

pub async fn load_station(db: &Database) -> Result<Option<StationSettings>, String> {
    read_setting(db, STATION_KEY).await
}

pub async fn save_station(db: &Database, settings: &StationSettings) -> Result<(), String> {
    write_setting(db, STATION_KEY, settings).await?;
    // A new or corrected token: the outbox can go now instead of at the next period. (Only
    // here: the sync pass itself writes other settings, the pull cursor, and must not wake
    // itself.)
    crate::sync::wake();
    Ok(())
}

/// Changes the stored station settings in one transaction, so a change saved meanwhile (a new
/// token from setup) is not overwritten with the values read before it. For the sync pass's own
/// changes (thresholds from a pull): unlike [`save_station`], it does not wake the sync loop.
pub async fn update_station(
    db: &Database,
    change: impl FnOnce(&mut StationSettings),
) -> Result<(), String> {
    let context = "saving settings";
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadWrite)
        .map_err(|e| error(context, e))?;
    let store = tx.object_store(SETTINGS).map_err(|e| error(context, e))?;
    let key = JsValue::from_str(STATION_KEY);
    let stored: Option<JsValue> = store
        .get(key.clone())
        .map_err(|e| error(context, e))?
        .await
        .map_err(|e| error(context, e))?;
    let mut station: StationSettings = from_stored(stored)?.unwrap_or_default();
    change(&mut station);
    let value = serde_wasm_bindgen::to_value(&station).map_err(|e| error(context, e))?;
    store
        .put(&value, Some(&key))
        .map_err(|e| error(context, e))?
        .await
        .map_err(|e| describe(context, e))?;
    commit(tx, context).await
}

pub async fn load_backend_choice(db: &Database) -> Result<Option<BackendChoice>, String> {
    read_setting(db, BACKEND_KEY).await
}

pub async fn save_backend_choice(db: &Database, choice: &BackendChoice) -> Result<(), String> {
    write_setting(db, BACKEND_KEY, choice).await
}

/// When the current shift began; the first start on a tablet begins one.
pub async fn shift_started_at(db: &Database) -> Result<DateTime<Utc>, String> {
    match read_setting(db, SHIFT_KEY).await? {
        Some(at) => Ok(at),
        None => {
            let now = Utc::now();
            start_shift(db, now).await?;
            Ok(now)
        }
    }
}

pub async fn start_shift(db: &Database, at: DateTime<Utc>) -> Result<(), String> {
    write_setting(db, SHIFT_KEY, &at).await
}

/// How far this station has pulled the server's changes.
pub async fn pull_cursor(db: &Database) -> Result<u64, String> {
    Ok(read_setting(db, PULL_CURSOR_KEY).await?.unwrap_or(0))
}

pub async fn save_pull_cursor(db: &Database, cursor: u64) -> Result<(), String> {
    write_setting(db, PULL_CURSOR_KEY, &cursor).await
}

/// The model a supervisor assigned to this station; `None`: the default model.
pub async fn assigned_model(db: &Database) -> Result<Option<ModelAssignment>, String> {
    Ok(
        read_setting::<Option<ModelAssignment>>(db, ASSIGNED_MODEL_KEY)
            .await?
            .flatten(),
    )
}

pub async fn save_assigned_model(
    db: &Database,
    model: Option<&ModelAssignment>,
) -> Result<(), String> {
    write_setting(db, ASSIGNED_MODEL_KEY, &model).await
}

/// Supervisors' corrections of this station's inspections, as pulled.
pub async fn corrections(db: &Database) -> Result<Vec<Correction>, String> {
    Ok(read_setting(db, CORRECTIONS_KEY).await?.unwrap_or_default())
}

/// Adds `new` to the stored corrections; one already stored (same id) is not added twice.
pub async fn add_corrections(db: &Database, new: &[Correction]) -> Result<(), String> {
    let mut all = corrections(db).await?;
    for correction in new {
        if !all.iter().any(|c| c.id == correction.id) {
            all.push(correction.clone());
        }
    }
    write_setting(db, CORRECTIONS_KEY, &all).await
}

/// Resolves only once the transaction has committed, so the caller may tell the operator "saved".
async fn write_setting<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), String> {
    let value = serde_wasm_bindgen::to_value(value).map_err(|e| error("encoding settings", e))?;
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadWrite)
        .map_err(|e| error("saving settings", e))?;
    let store = tx
        .object_store(SETTINGS)
        .map_err(|e| error("saving settings", e))?;
    store
        .put(&value, Some(&JsValue::from_str(key)))
        .map_err(|e| error("saving settings", e))?
        .await
        .map_err(|e| error("saving settings", e))?;
    commit(tx, "saving settings").await
}
