//! Inspections on the kiosk: saved with their snapshot and sequence number in one IndexedDB
//! transaction, kept until the server has them, read back for the history screen and the sync.
//!
//! A row's place in the `outbox` index is the outbox: it is there from the save until the server
//! answers `applied`/`already_applied` (or rejects it for good). No function here deletes a row;
//! `prune_synced_snapshots` only drops the JPEG of rows the server already holds.

use crate::storage::{
    self, BY_SEQUENCE, BY_SNAPSHOT, INSPECTIONS, OUTBOX, PRUNABLE, SETTINGS, SNAPSHOTS, commit,
    describe, error,
};
use chrono::{DateTime, Utc};
use idb::{CursorDirection, Query, TransactionMode};
use js_sys::Uint8Array;
use protocol::{InspectionRecord, PushItemResult, PushStatus, SnapshotRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wasm_bindgen::JsValue;

/// Where an inspection stands with the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SyncState {
    /// In the outbox: not on the server yet.
    Pending,
    /// The server holds it (`PushStatus::is_stored`) since `at` (the kiosk's clock).
    Synced { at: DateTime<Utc> },
    /// The server refused it for good; it stays on the kiosk for a person to look at.
    Rejected { reason: String },
}

/// One inspection as the kiosk holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInspection {
    pub record: InspectionRecord,
    pub sync: SyncState,
    /// False once the JPEG was pruned (only ever after the server stored it) or if there was none.
    pub has_snapshot: bool,
}

/// The stored form of a [`StoredInspection`]. `outbox` and `prunable` (both the sequence) are
/// present only while the row belongs to that index, which keeps both indexes sparse.
#[derive(Debug, Serialize, Deserialize)]
struct Row {
    record: InspectionRecord,
    sequence: u64,
    sync: SyncState,
    has_snapshot: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbox: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prunable: Option<u64>,
}

impl Row {
    fn new(record: InspectionRecord, sync: SyncState, has_snapshot: bool) -> Row {
        let sequence = record.sequence;
        Row {
            outbox: matches!(sync, SyncState::Pending).then_some(sequence),
            prunable: (has_snapshot && matches!(sync, SyncState::Synced { .. }))
                .then_some(sequence),
            record,
            sequence,
            sync,
            has_snapshot,
        }
    }

    fn decode(value: JsValue) -> Result<Row, String> {
        serde_wasm_bindgen::from_value(value)
            .map_err(|e| error("a stored inspection is unreadable", e))
    }

    fn encode(&self) -> Result<JsValue, String> {
        serde_wasm_bindgen::to_value(self).map_err(|e| error("encoding an inspection", e))
    }

    fn into_stored(self) -> StoredInspection {
        StoredInspection {
            record: self.record,
            sync: self.sync,
            has_snapshot: self.has_snapshot,
        }
    }
}

/// This tablet's identity and the last sequence number it gave out, under `settings/device`.
#[derive(Debug, Serialize, Deserialize)]
struct DeviceCounter {
    device_id: Uuid,
    last_sequence: u64,
}

const DEVICE_KEY: &str = "device";

/// A random (version 4) UUID from the browser's CSPRNG, which, unlike `crypto.randomUUID`, is
/// there on plain http too.
pub fn new_record_id() -> Uuid {
    let mut bytes = [0u8; 16];
    web_sys::window()
        .expect("the kiosk runs in a window")
        .crypto()
        .and_then(|crypto| crypto.get_random_values_with_u8_array(&mut bytes))
        .expect("crypto.getRandomValues is available in every supported browser");
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Lower-case hex SHA-256 and length of a JPEG: how the server addresses it.
pub fn snapshot_ref(jpeg: &[u8]) -> SnapshotRef {
    SnapshotRef {
        sha256: Sha256::digest(jpeg)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        byte_len: jpeg.len() as u64,
    }
}

/// The device counter as stored, or a new one (a new tablet, or its storage was cleared).
async fn read_counter(store: &idb::ObjectStore) -> Result<DeviceCounter, idb::Error> {
    let stored: Option<JsValue> = store.get(JsValue::from_str(DEVICE_KEY))?.await?;
    Ok(stored
        .and_then(|v| serde_wasm_bindgen::from_value(v).ok())
        .unwrap_or_else(|| DeviceCounter {
            device_id: new_record_id(),
            last_sequence: 0,
        }))
}

async fn write_counter(store: &idb::ObjectStore, counter: &DeviceCounter) -> Result<(), String> {
    let value =
        serde_wasm_bindgen::to_value(counter).map_err(|e| error("encoding the device", e))?;
    store
        .put(&value, Some(&JsValue::from_str(DEVICE_KEY)))
        .map_err(|e| error("saving the device", e))?
        .await
        .map_err(|e| describe("saving the device", e))?;
    Ok(())
}

/// This tablet's device id: generated on first use and kept with the sequence counter.
pub async fn device_id(db: &idb::Database) -> Result<Uuid, String> {
    const CONTEXT: &str = "reading the device id";
    let tx = db
        .transaction(&[SETTINGS], TransactionMode::ReadWrite)
        .map_err(|e| error(CONTEXT, e))?;
    let store = tx.object_store(SETTINGS).map_err(|e| error(CONTEXT, e))?;
    let counter = read_counter(&store)
        .await
        .map_err(|e| describe(CONTEXT, e))?;
    write_counter(&store, &counter).await?;
    commit(tx, CONTEXT).await?;
    Ok(counter.device_id)
}

/// Stores the inspection and its JPEG snapshot in ONE IndexedDB transaction together with the
/// device's sequence counter: fills in `device_id`, `sequence` (strictly increasing per device),
/// and `snapshot` (SHA-256 + length of `jpeg`; `None` when `jpeg` is empty). Resolves only after
/// the transaction committed (with strict durability: on disk), with the record as stored.
///
/// Then wakes the sync loop, so the record heads for the server at once when online.
///
/// A record that fails `InspectionRecord::validate` (such as a station not set up) is refused
/// with the reason, since the server would refuse it forever. When the tablet's storage is full,
/// snapshots the server already holds are pruned and the save is tried once more; if it still
/// does not fit, nothing is dropped and the error says the storage is full.
pub async fn save_inspection(
    db: &idb::Database,
    mut record: InspectionRecord,
    jpeg: Vec<u8>,
) -> Result<InspectionRecord, String> {
    record.snapshot = (!jpeg.is_empty()).then(|| snapshot_ref(&jpeg));
    record
        .validate()
        .map_err(|e| format!("the inspection cannot be saved: {e}"))?;
    let bytes = Uint8Array::from(jpeg.as_slice());
    let saved = match save_once(db, record.clone(), &bytes).await {
        Err(SaveError::Db(e)) if storage::is_quota_error(&e) => {
            // Room for this save, with margin for the record and the indexes.
            let wanted = 2 * jpeg.len() as u64 + 1024 * 1024;
            prune_synced_snapshots(db, wanted).await?;
            save_once(db, record, &bytes)
                .await
                .map_err(SaveError::into_message)
        }
        other => other.map_err(SaveError::into_message),
    }?;
    crate::sync::wake();
    Ok(saved)
}

enum SaveError {
    Db(idb::Error),
    Other(String),
}

impl SaveError {
    fn into_message(self) -> String {
        match self {
            SaveError::Db(e) => describe("saving the inspection", e),
            SaveError::Other(message) => message,
        }
    }
}

impl From<idb::Error> for SaveError {
    fn from(e: idb::Error) -> Self {
        SaveError::Db(e)
    }
}

impl From<String> for SaveError {
    fn from(message: String) -> Self {
        SaveError::Other(message)
    }
}

async fn save_once(
    db: &idb::Database,
    mut record: InspectionRecord,
    jpeg: &Uint8Array,
) -> Result<InspectionRecord, SaveError> {
    let tx = storage::strict_transaction(db, &[SETTINGS, INSPECTIONS, SNAPSHOTS])?;
    let settings = tx.object_store(SETTINGS)?;
    let mut counter = read_counter(&settings).await?;
    counter.last_sequence += 1;
    record.device_id = counter.device_id;
    record.sequence = counter.last_sequence;
    write_counter(&settings, &counter).await?;
    if let Some(snapshot) = &record.snapshot {
        tx.object_store(SNAPSHOTS)?
            .put(jpeg, Some(&JsValue::from_str(&snapshot.sha256)))?
            .await?;
    }
    let row = Row::new(
        record.clone(),
        SyncState::Pending,
        record.snapshot.is_some(),
    );
    // `add`, not `put`: a second save of one id fails instead of replacing the first.
    tx.object_store(INSPECTIONS)?
        .add(
            &row.encode()?,
            Some(&JsValue::from_str(&record.id.to_string())),
        )?
        .await?;
    match tx.commit()?.await? {
        idb::TransactionResult::Committed => Ok(record),
        idb::TransactionResult::Aborted => {
            Err("saving the inspection: the transaction was aborted"
                .to_string()
                .into())
        }
    }
}

/// `index` of the inspections, in a read-only transaction of its own.
fn inspections_index(db: &idb::Database, index: &str, context: &str) -> Result<idb::Index, String> {
    db.transaction(&[INSPECTIONS], TransactionMode::ReadOnly)
        .and_then(|tx| tx.object_store(INSPECTIONS))
        .and_then(|store| store.index(index))
        .map_err(|e| error(context, e))
}

/// Newest first.
pub async fn recent_inspections(
    db: &idb::Database,
    limit: u32,
) -> Result<Vec<StoredInspection>, String> {
    const CONTEXT: &str = "reading the history";
    let mut found = Vec::new();
    let cursor = inspections_index(db, BY_SEQUENCE, CONTEXT)?
        .open_cursor(None, Some(CursorDirection::Prev))
        .map_err(|e| error(CONTEXT, e))?
        .await
        .map_err(|e| error(CONTEXT, e))?;
    let Some(cursor) = cursor else {
        return Ok(found);
    };
    let mut cursor = cursor.into_managed();
    while found.len() < limit as usize {
        let Some(value) = cursor.value().map_err(|e| error(CONTEXT, e))? else {
            break;
        };
        found.push(Row::decode(value)?.into_stored());
        cursor.next(None).await.map_err(|e| error(CONTEXT, e))?;
    }
    Ok(found)
}

/// The JPEG stored under `sha256`, or `None` if there is none (never saved, or pruned after the
/// server stored it).
pub async fn snapshot_jpeg(db: &idb::Database, sha256: &str) -> Result<Option<Vec<u8>>, String> {
    const CONTEXT: &str = "reading a snapshot";
    let tx = db
        .transaction(&[SNAPSHOTS], TransactionMode::ReadOnly)
        .map_err(|e| error(CONTEXT, e))?;
    let value: Option<JsValue> = tx
        .object_store(SNAPSHOTS)
        .map_err(|e| error(CONTEXT, e))?
        .get(JsValue::from_str(sha256))
        .map_err(|e| error(CONTEXT, e))?
        .await
        .map_err(|e| error(CONTEXT, e))?;
    Ok(value.map(|v| Uint8Array::new(&v).to_vec()))
}

/// How many inspections wait for the server.
pub async fn pending_count(db: &idb::Database) -> Result<u32, String> {
    const CONTEXT: &str = "counting the outbox";
    inspections_index(db, OUTBOX, CONTEXT)?
        .count(None)
        .map_err(|e| error(CONTEXT, e))?
        .await
        .map_err(|e| error(CONTEXT, e))
}

/// The oldest outbox records, in sequence order: at most `max_records`, and, after the first,
/// only as many as keep their JSON within `max_bytes` together.
pub async fn outbox_batch(
    db: &idb::Database,
    max_records: u32,
    max_bytes: usize,
) -> Result<Vec<InspectionRecord>, String> {
    const CONTEXT: &str = "reading the outbox";
    let values = inspections_index(db, OUTBOX, CONTEXT)?
        .get_all(None, Some(max_records))
        .map_err(|e| error(CONTEXT, e))?
        .await
        .map_err(|e| error(CONTEXT, e))?;
    let mut batch = Vec::new();
    let mut bytes = 0;
    for value in values {
        let record = Row::decode(value)?.record;
        bytes += serde_json::to_vec(&record)
            .map_err(|e| error("encoding a record", e))?
            .len();
        if !batch.is_empty() && bytes > max_bytes {
            break;
        }
        batch.push(record);
    }
    Ok(batch)
}

/// What a push's results did to the outbox.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppliedResults {
    /// Left the outbox: the server holds them.
    pub stored: u32,
    /// Left the outbox for good, kept as `SyncState::Rejected`.
    pub rejected: Vec<(Uuid, String)>,
    /// Still in the outbox, with the server's reason (such as a snapshot it does not have yet).
    pub retry: Vec<(Uuid, String)>,
}

/// Records the server's answer to a push in one transaction: a record leaves the outbox only
/// when `PushStatus::is_stored`, or as `Rejected` when the server says it never will be.
pub async fn apply_push_results(
    db: &idb::Database,
    results: &[PushItemResult],
) -> Result<AppliedResults, String> {
    const CONTEXT: &str = "recording the server's answer";
    let tx = db
        .transaction(&[INSPECTIONS], TransactionMode::ReadWrite)
        .map_err(|e| error(CONTEXT, e))?;
    let store = tx
        .object_store(INSPECTIONS)
        .map_err(|e| error(CONTEXT, e))?;
    let now = Utc::now();
    let mut applied = AppliedResults::default();
    for result in results {
        let key = JsValue::from_str(&result.id.to_string());
        let Some(value) = store
            .get(key.clone())
            .map_err(|e| error(CONTEXT, e))?
            .await
            .map_err(|e| error(CONTEXT, e))?
        else {
            continue; // Not a record of this kiosk's: nothing to update.
        };
        let row = Row::decode(value)?;
        if row.sync != SyncState::Pending {
            continue; // A repeated answer: the first one was recorded.
        }
        let sync = match &result.status {
            status if status.is_stored() => {
                applied.stored += 1;
                SyncState::Synced { at: now }
            }
            PushStatus::Rejected {
                reason,
                retryable: false,
            } => {
                applied.rejected.push((result.id, reason.clone()));
                SyncState::Rejected {
                    reason: reason.clone(),
                }
            }
            PushStatus::Rejected { reason, .. } => {
                applied.retry.push((result.id, reason.clone()));
                continue;
            }
            _ => unreachable!("applied and already_applied are stored"),
        };
        let row = Row::new(row.record, sync, row.has_snapshot);
        store
            .put(&row.encode()?, Some(&key))
            .map_err(|e| error(CONTEXT, e))?
            .await
            .map_err(|e| describe(CONTEXT, e))?;
    }
    commit(tx, CONTEXT).await?;
    Ok(applied)
}

/// What `prune_synced_snapshots` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub snapshots: u32,
    pub bytes: u64,
}

/// Deletes the JPEGs of inspections the server already holds, oldest first, until `wanted`
/// bytes are freed or none is left. A JPEG that a pending or rejected record also names is kept.
/// Records themselves are never deleted.
pub async fn prune_synced_snapshots(db: &idb::Database, wanted: u64) -> Result<Pruned, String> {
    const CONTEXT: &str = "pruning synced snapshots";
    let fail = |e: idb::Error| describe(CONTEXT, e);
    let tx = db
        .transaction(&[INSPECTIONS, SNAPSHOTS], TransactionMode::ReadWrite)
        .map_err(fail)?;
    let inspections = tx.object_store(INSPECTIONS).map_err(fail)?;
    let snapshots = tx.object_store(SNAPSHOTS).map_err(fail)?;
    let by_snapshot = inspections.index(BY_SNAPSHOT).map_err(fail)?;
    let mut pruned = Pruned::default();
    // Collected first: the rows change index membership as they are pruned.
    let candidates = inspections
        .index(PRUNABLE)
        .map_err(fail)?
        .get_all(None, None)
        .map_err(fail)?
        .await
        .map_err(fail)?;
    for value in candidates {
        if pruned.bytes >= wanted {
            break;
        }
        let Some(snapshot) = Row::decode(value)?.record.snapshot else {
            continue;
        };
        let key = JsValue::from_str(&snapshot.sha256);
        let sharing: Vec<Row> = by_snapshot
            .get_all(Some(Query::Key(key.clone())), None)
            .map_err(fail)?
            .await
            .map_err(fail)?
            .into_iter()
            .map(Row::decode)
            .collect::<Result<_, _>>()?;
        let all_synced = sharing
            .iter()
            .all(|row| matches!(row.sync, SyncState::Synced { .. }));
        if !all_synced {
            continue;
        }
        snapshots
            .delete(Query::Key(key))
            .map_err(fail)?
            .await
            .map_err(fail)?;
        for row in sharing.into_iter().filter(|row| row.has_snapshot) {
            let id = JsValue::from_str(&row.record.id.to_string());
            let row = Row::new(row.record, row.sync, false);
            inspections
                .put(&row.encode()?, Some(&id))
                .map_err(fail)?
                .await
                .map_err(fail)?;
        }
        pruned.snapshots += 1;
        pruned.bytes += snapshot.byte_len;
    }
    commit(tx, CONTEXT).await?;
    Ok(pruned)
}

/// Run in headless Chromium by `cargo xtask test` (wasm-bindgen-test-runner), each test on a
/// database of its own.
#[cfg(test)]
mod tests {
    use super::*;
    use idb::DatabaseEvent;
    use protocol::{ModelRef, OperatorDecision, Verdict};
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    /// A fresh database, deleted again when the test ends.
    struct TestDb {
        name: String,
        db: idb::Database,
    }

    impl TestDb {
        async fn new() -> TestDb {
            let name = format!("test-{}", new_record_id());
            let db = storage::open_named(&name).await.unwrap();
            TestDb { name, db }
        }

        /// Closes and opens the database again, as a reload would.
        async fn reopen(&mut self) {
            self.db.close();
            self.db = storage::open_named(&self.name).await.unwrap();
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            self.db.close();
            let _ = idb::Factory::new().and_then(|f| f.delete(&self.name));
        }
    }

    fn record(serial: &str) -> InspectionRecord {
        let now = Utc::now();
        InspectionRecord {
            id: new_record_id(),
            device_id: Uuid::nil(),
            sequence: 0,
            inspected_at: now,
            local_time: now.fixed_offset(),
            station: "ST-04".into(),
            line: "Line 2".into(),
            operator: "badge-1182".into(),
            part_serial: serial.into(),
            lot: "LOT-77".into(),
            model: ModelRef {
                id: "linecheck-defects".into(),
                version: "1".into(),
            },
            default_threshold: 0.5,
            thresholds: vec![],
            detections: vec![],
            verdict: Verdict::Pass,
            decision: OperatorDecision::Confirmed,
            snapshot: None,
        }
    }

    /// A distinct JPEG-looking payload per part.
    fn jpeg(serial: &str) -> Vec<u8> {
        [
            &[0xFF, 0xD8, 0xFF, 0xE0][..],
            serial.as_bytes(),
            &[0u8; 1000],
        ]
        .concat()
    }

    async fn save(db: &idb::Database, serial: &str) -> InspectionRecord {
        save_inspection(db, record(serial), jpeg(serial))
            .await
            .unwrap()
    }

    fn stored(id: Uuid) -> PushItemResult {
        PushItemResult {
            id,
            status: PushStatus::Applied,
        }
    }

    fn rejected(id: Uuid, retryable: bool) -> PushItemResult {
        PushItemResult {
            id,
            status: PushStatus::Rejected {
                reason: "no".into(),
                retryable,
            },
        }
    }

    #[wasm_bindgen_test]
    async fn saves_fill_in_one_device_and_strictly_increasing_sequences() {
        let t = TestDb::new().await;
        let device = device_id(&t.db).await.unwrap();
        let mut sequences = vec![];
        for serial in ["a", "b", "c", "d"] {
            let saved = save(&t.db, serial).await;
            assert_eq!(saved.device_id, device);
            assert_eq!(saved.snapshot, Some(snapshot_ref(&jpeg(serial))));
            sequences.push(saved.sequence);
        }
        assert_eq!(sequences, [1, 2, 3, 4]);
        assert_eq!(
            device_id(&t.db).await.unwrap(),
            device,
            "the device id is kept"
        );
        let snapshot = snapshot_ref(b"abc");
        assert_eq!(
            snapshot.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[wasm_bindgen_test]
    async fn a_pulled_threshold_change_keeps_a_token_saved_meanwhile() {
        let t = TestDb::new().await;
        let station = |token: &str| storage::StationSettings {
            token: token.into(),
            ..Default::default()
        };
        storage::save_station(&t.db, &station("refused"))
            .await
            .unwrap();
        // The pull's change starts first, setup's save of a corrected token comes while it runs.
        let corrected = station("corrected");
        let (pulled, saved) = futures::join!(
            storage::update_station(&t.db, |s| s.default_threshold = 0.7),
            storage::save_station(&t.db, &corrected),
        );
        pulled.unwrap();
        saved.unwrap();
        let stored = storage::load_station(&t.db).await.unwrap().unwrap();
        assert_eq!(stored.token, "corrected");
    }

    #[wasm_bindgen_test]
    async fn concurrent_saves_never_share_a_sequence() {
        let t = TestDb::new().await;
        let saves = ["a", "b", "c", "d", "e"].map(|serial| save(&t.db, serial));
        let mut sequences: Vec<u64> = futures::future::join_all(saves)
            .await
            .iter()
            .map(|r| r.sequence)
            .collect();
        sequences.sort();
        assert_eq!(sequences, [1, 2, 3, 4, 5]);
    }

    #[wasm_bindgen_test]
    async fn saves_run_in_transactions_with_strict_durability() {
        let t = TestDb::new().await;
        let tx: web_sys::IdbTransaction = storage::strict_transaction(&t.db, &[SETTINGS])
            .unwrap()
            .into();
        let durability = js_sys::Reflect::get(&tx, &"durability".into()).unwrap();
        assert_eq!(durability.as_string().as_deref(), Some("strict"));
        assert_eq!(tx.mode().unwrap(), web_sys::IdbTransactionMode::Readwrite);
    }

    #[wasm_bindgen_test]
    fn pruning_starts_above_the_high_water_mark_and_aims_for_the_low_one() {
        use crate::quota::Estimate;
        let at = |usage| Estimate { usage, quota: 1000 };
        assert_eq!(at(800).bytes_to_free(), 0);
        assert_eq!(at(801).bytes_to_free(), 101);
        assert_eq!(at(1000).bytes_to_free(), 300);
        assert_eq!(
            Estimate { usage: 5, quota: 0 }.bytes_to_free(),
            0,
            "no quota known"
        );
    }

    #[wasm_bindgen_test]
    async fn a_save_is_there_after_the_database_is_reopened() {
        let mut t = TestDb::new().await;
        let first = save(&t.db, "SN-1").await;
        let second = save(&t.db, "SN-2").await;
        t.reopen().await;
        let recent = recent_inspections(&t.db, 10).await.unwrap();
        assert_eq!(
            recent,
            [second.clone(), first.clone()].map(|record| StoredInspection {
                record,
                sync: SyncState::Pending,
                has_snapshot: true,
            })
        );
        let sha = &first.snapshot.as_ref().unwrap().sha256;
        assert_eq!(snapshot_jpeg(&t.db, sha).await.unwrap(), Some(jpeg("SN-1")));
        assert_eq!(recent_inspections(&t.db, 1).await.unwrap().len(), 1);
        // The counter survives too: the next save continues the sequence.
        assert_eq!(save(&t.db, "SN-3").await.sequence, 3);
    }

    #[wasm_bindgen_test]
    async fn an_invalid_record_is_refused_with_the_field_named() {
        let t = TestDb::new().await;
        let mut unset = record("x");
        unset.operator = String::new();
        let err = save_inspection(&t.db, unset, jpeg("x")).await.unwrap_err();
        assert!(err.contains("operator"), "{err}");
        assert_eq!(recent_inspections(&t.db, 10).await.unwrap(), []);
        assert_eq!(
            save(&t.db, "y").await.sequence,
            1,
            "no sequence was used up"
        );
    }

    #[wasm_bindgen_test]
    async fn only_stored_results_and_final_rejections_leave_the_outbox() {
        let t = TestDb::new().await;
        let a = save(&t.db, "a").await;
        let b = save(&t.db, "b").await;
        let c = save(&t.db, "c").await;
        let d = save(&t.db, "d").await;
        let applied = apply_push_results(
            &t.db,
            &[
                stored(a.id),
                PushItemResult {
                    id: b.id,
                    status: PushStatus::AlreadyApplied,
                },
                rejected(c.id, false),
                rejected(d.id, true),
            ],
        )
        .await
        .unwrap();
        assert_eq!(applied.stored, 2);
        assert_eq!(applied.rejected, [(c.id, "no".to_string())]);
        assert_eq!(applied.retry, [(d.id, "no".to_string())]);
        assert_eq!(pending_count(&t.db).await.unwrap(), 1);
        let outbox = outbox_batch(&t.db, 10, MAX_BYTES).await.unwrap();
        assert_eq!(outbox, std::slice::from_ref(&d));
        let states: Vec<SyncState> = recent_inspections(&t.db, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.sync)
            .collect();
        assert_eq!(states[0], SyncState::Pending);
        assert_eq!(
            states[1],
            SyncState::Rejected {
                reason: "no".into()
            }
        );
        assert!(matches!(states[2], SyncState::Synced { .. }));
        assert!(matches!(states[3], SyncState::Synced { .. }));
        // A repeated answer changes nothing: a rejected record does not come back as synced.
        let again = apply_push_results(&t.db, &[stored(c.id)]).await.unwrap();
        assert_eq!(again, AppliedResults::default());
    }

    const MAX_BYTES: usize = 1 << 20;

    #[wasm_bindgen_test]
    async fn outbox_batches_follow_the_sequence_and_stay_within_the_byte_budget() {
        let t = TestDb::new().await;
        let mut saved = vec![];
        for serial in ["a", "b", "c", "d", "e"] {
            saved.push(save(&t.db, serial).await);
        }
        assert_eq!(outbox_batch(&t.db, 3, MAX_BYTES).await.unwrap(), saved[..3]);
        let one = serde_json::to_vec(&saved[0]).unwrap().len();
        let two = outbox_batch(&t.db, 10, 2 * one + 1).await.unwrap();
        assert_eq!(two, saved[..2]);
        // A record larger than the budget still goes alone, so the outbox cannot get stuck.
        assert_eq!(outbox_batch(&t.db, 10, 1).await.unwrap(), saved[..1]);
    }

    #[wasm_bindgen_test]
    async fn pruning_removes_only_snapshots_the_server_holds_oldest_first() {
        let t = TestDb::new().await;
        let synced_old = save(&t.db, "old").await;
        let pending = save(&t.db, "pending").await;
        let refused = save(&t.db, "refused").await;
        let synced_new = save(&t.db, "new").await;
        apply_push_results(
            &t.db,
            &[
                stored(synced_old.id),
                rejected(refused.id, false),
                stored(synced_new.id),
            ],
        )
        .await
        .unwrap();
        let sha = |r: &InspectionRecord| r.snapshot.clone().unwrap().sha256;
        let len = synced_old.snapshot.as_ref().unwrap().byte_len;

        // One byte wanted: only the oldest synced snapshot goes.
        let pruned = prune_synced_snapshots(&t.db, 1).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                snapshots: 1,
                bytes: len
            }
        );
        assert_eq!(snapshot_jpeg(&t.db, &sha(&synced_old)).await.unwrap(), None);
        assert!(
            snapshot_jpeg(&t.db, &sha(&synced_new))
                .await
                .unwrap()
                .is_some()
        );

        // Everything wanted: the other synced one goes; pending and refused keep theirs.
        let pruned = prune_synced_snapshots(&t.db, u64::MAX).await.unwrap();
        assert_eq!(pruned.snapshots, 1);
        assert_eq!(
            prune_synced_snapshots(&t.db, u64::MAX).await.unwrap(),
            Pruned::default()
        );
        for kept in [&pending, &refused] {
            assert_eq!(
                snapshot_jpeg(&t.db, &sha(kept)).await.unwrap(),
                Some(jpeg(&kept.part_serial))
            );
        }
        let recent = recent_inspections(&t.db, 10).await.unwrap();
        assert_eq!(recent.len(), 4, "no record is ever deleted");
        let has_snapshot: Vec<bool> = recent.iter().map(|s| s.has_snapshot).collect();
        assert_eq!(has_snapshot, [false, true, true, false]);
        assert_eq!(pending_count(&t.db).await.unwrap(), 1);
    }

    #[wasm_bindgen_test]
    async fn a_snapshot_shared_with_an_unsynced_record_is_kept() {
        let t = TestDb::new().await;
        let synced = save_inspection(&t.db, record("a"), jpeg("same"))
            .await
            .unwrap();
        let pending = save_inspection(&t.db, record("b"), jpeg("same"))
            .await
            .unwrap();
        assert_eq!(synced.snapshot, pending.snapshot);
        apply_push_results(&t.db, &[stored(synced.id)])
            .await
            .unwrap();
        assert_eq!(
            prune_synced_snapshots(&t.db, u64::MAX).await.unwrap(),
            Pruned::default()
        );
        let sha = &pending.snapshot.unwrap().sha256;
        assert_eq!(snapshot_jpeg(&t.db, sha).await.unwrap(), Some(jpeg("same")));
    }

    #[wasm_bindgen_test]
    async fn a_version_1_database_keeps_its_station_settings_when_upgraded() {
        let name = format!("test-{}", new_record_id());
        let factory = idb::Factory::new().unwrap();
        let mut request = factory.open(&name, Some(1)).unwrap();
        request.on_upgrade_needed(|event| {
            let db = event.database().unwrap();
            db.create_object_store(SETTINGS, idb::ObjectStoreParams::new())
                .unwrap();
        });
        let v1 = request.await.unwrap();
        // What version 1 stored: a plain object with no token.
        let old = js_sys::JSON::parse(r#"{"station": "ST-01", "line": "L1", "operator": "Jana"}"#)
            .unwrap();
        let tx = v1
            .transaction(&[SETTINGS], TransactionMode::ReadWrite)
            .unwrap();
        tx.object_store(SETTINGS)
            .unwrap()
            .put(&old, Some(&JsValue::from_str("station")))
            .unwrap()
            .await
            .unwrap();
        commit(tx, "test").await.unwrap();
        v1.close();

        let t = TestDb {
            db: storage::open_named(&name).await.unwrap(),
            name,
        };
        let settings = storage::load_station(&t.db).await.unwrap().unwrap();
        assert_eq!(settings.station, "ST-01");
        assert_eq!(settings.token, "", "no token until one is entered");
        assert_eq!(save(&t.db, "a").await.sequence, 1);
    }
}
