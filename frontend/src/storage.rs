//! The kiosk's IndexedDB database. Everything the station needs across reloads lives here.

use idb::{
    Database, DatabaseEvent, Factory, ObjectStoreParams, TransactionMode, TransactionResult,
};
use crate::{detection::BackendChoice, i18n::Language};
use chrono::{DateTime, Utc};
use protocol::ClassThreshold;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use wasm_bindgen::JsValue;

const DATABASE: &str = "linecheck";
/// Bump with a new branch in `upgrade` whenever stores or indexes change.
const VERSION: u32 = 1;
const SETTINGS: &str = "settings";
const STATION_KEY: &str = "station";
const BACKEND_KEY: &str = "backend";
const SHIFT_KEY: &str = "shift_started_at";

/// Who and where this kiosk is, and how it inspects. Fields added later get their defaults when
/// older stored settings are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StationSettings {
    pub station: String,
    pub line: String,
    pub operator: String,
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
            language: Language::default(),
            camera_id: None,
            resolution: (1280, 720),
            // The shipped model's operating point (models/MODEL_CARD.md).
            default_threshold: 0.25,
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


fn error(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

pub async fn open() -> Result<Database, String> {
    let factory = Factory::new().map_err(|e| error("IndexedDB is not available", e))?;
    let mut request = factory
        .open(DATABASE, Some(VERSION))
        .map_err(|e| error("opening the database", e))?;
    request.on_upgrade_needed(|event| {
        let Ok(db) = event.database() else { return };
        if !db.store_names().iter().any(|s| s == SETTINGS) {
            // The upgrade transaction aborts (and `open` fails) if this throws.
            let _ = db.create_object_store(SETTINGS, ObjectStoreParams::new());
        }
    });
    request.await.map_err(|e| error("opening the database", e))
}

pub async fn load_station(db: &Database) -> Result<Option<StationSettings>, String> {
    load_setting(db, STATION_KEY).await
}

pub async fn save_station(db: &Database, settings: &StationSettings) -> Result<(), String> {
    save_setting(db, STATION_KEY, settings).await
}

pub async fn load_backend_choice(db: &Database) -> Result<Option<BackendChoice>, String> {
    load_setting(db, BACKEND_KEY).await
}

pub async fn save_backend_choice(db: &Database, choice: &BackendChoice) -> Result<(), String> {
    save_setting(db, BACKEND_KEY, choice).await
}

/// When the current shift began; the first start on a tablet begins one.
pub async fn shift_started_at(db: &Database) -> Result<DateTime<Utc>, String> {
    match load_setting(db, SHIFT_KEY).await? {
        Some(at) => Ok(at),
        None => {
            let now = Utc::now();
            start_shift(db, now).await?;
            Ok(now)
        }
    }
}

pub async fn start_shift(db: &Database, at: DateTime<Utc>) -> Result<(), String> {
    save_setting(db, SHIFT_KEY, &at).await
}

async fn load_setting<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, String> {
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
    value
        .map(|v| {
            serde_wasm_bindgen::from_value(v)
                .map_err(|e| error("stored settings are unreadable", e))
        })
        .transpose()
}

/// Resolves only once the transaction has committed, so the caller may tell the operator "saved".
async fn save_setting<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), String> {
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
    match tx.commit().map_err(|e| error("saving settings", e))?.await {
        Ok(TransactionResult::Committed) => Ok(()),
        Ok(TransactionResult::Aborted) => {
            Err("saving settings: the transaction was aborted".into())
        }
        Err(e) => Err(error("saving settings", e)),
    }
}
