//! The kiosk's IndexedDB database. Everything the station needs across reloads lives here.

use idb::{
    Database, DatabaseEvent, Factory, ObjectStoreParams, TransactionMode, TransactionResult,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

const DATABASE: &str = "linecheck";
/// Bump with a new branch in `upgrade` whenever stores or indexes change.
const VERSION: u32 = 1;
const SETTINGS: &str = "settings";
const STATION_KEY: &str = "station";

/// Who and where this kiosk is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StationSettings {
    pub station: String,
    pub line: String,
    pub operator: String,
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
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadOnly)
        .map_err(|e| error("reading settings", e))?;
    let store = tx
        .object_store(SETTINGS)
        .map_err(|e| error("reading settings", e))?;
    let value: Option<JsValue> = store
        .get(JsValue::from_str(STATION_KEY))
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
pub async fn save_station(db: &Database, settings: &StationSettings) -> Result<(), String> {
    let value =
        serde_wasm_bindgen::to_value(settings).map_err(|e| error("encoding settings", e))?;
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadWrite)
        .map_err(|e| error("saving settings", e))?;
    let store = tx
        .object_store(SETTINGS)
        .map_err(|e| error("saving settings", e))?;
    store
        .put(&value, Some(&JsValue::from_str(STATION_KEY)))
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
