//! The tablet's storage: persistence and quota (`navigator.storage`), and pruning when it fills.
//!
//! Above [`HIGH_WATER`] of the quota the kiosk prunes snapshots the server already holds, oldest
//! first, down to [`LOW_WATER`]; unsynced records and their snapshots are never touched, so a
//! tablet offline for too long fills up and says so instead of losing inspections.

use crate::records::{self, Pruned};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The share of the quota above which synced snapshots are pruned.
pub const HIGH_WATER: f64 = 0.8;
/// The share pruning brings usage down to, so it does not run again after every inspection.
pub const LOW_WATER: f64 = 0.7;

/// `navigator.storage.estimate()`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub usage: u64,
    pub quota: u64,
}

impl Estimate {
    pub fn used_share(&self) -> f64 {
        if self.quota == 0 {
            0.0
        } else {
            self.usage as f64 / self.quota as f64
        }
    }

    /// Bytes to free to get from above the high-water mark down to the low-water mark; 0 below
    /// it, and 0 when the browser reports no quota (nothing is known, so nothing is pruned).
    pub fn bytes_to_free(&self) -> u64 {
        if self.used_share() <= HIGH_WATER {
            0
        } else {
            self.usage
                .saturating_sub((self.quota as f64 * LOW_WATER) as u64)
        }
    }
}

fn storage_manager() -> Option<web_sys::StorageManager> {
    let navigator = web_sys::window()?.navigator();
    // Absent outside a secure context.
    js_sys::Reflect::has(&navigator, &"storage".into())
        .unwrap_or(false)
        .then(|| navigator.storage())
}

async fn call(promise: Result<js_sys::Promise, JsValue>) -> Result<JsValue, String> {
    JsFuture::from(promise.map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("{e:?}"))
}

/// Asks the browser not to evict this site's storage under pressure (`navigator.storage.persist()`).
/// Returns whether storage is persistent; browsers may decide without asking the user.
pub async fn request_persistence() -> Result<bool, String> {
    let manager = storage_manager().ok_or("the storage API needs a secure context")?;
    if call(manager.persisted()).await?.as_bool() == Some(true) {
        return Ok(true);
    }
    Ok(call(manager.persist()).await?.as_bool() == Some(true))
}

pub async fn estimate() -> Result<Estimate, String> {
    let manager = storage_manager().ok_or("the storage API needs a secure context")?;
    let estimate: web_sys::StorageEstimate = call(manager.estimate()).await?.unchecked_into();
    Ok(Estimate {
        usage: estimate.get_usage().unwrap_or(0.0) as u64,
        quota: estimate.get_quota().unwrap_or(0.0) as u64,
    })
}

/// What the operator should know about storage, or `None` when all is well.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageNotice {
    /// Pruning freed space; the records are all kept.
    Pruned { pruned: Pruned, used_share: f64 },
    /// Above the high-water mark with nothing the server holds left to prune.
    Full { used_share: f64 },
}

impl StorageNotice {
    pub fn message(&self) -> String {
        match self {
            StorageNotice::Pruned { pruned, used_share } => format!(
                "Storage {:.0}% full: removed {} photos already on the server ({:.1} MB); all inspections are kept",
                used_share * 100.0,
                pruned.snapshots,
                pruned.bytes as f64 / 1e6
            ),
            StorageNotice::Full { used_share } => format!(
                "Storage {:.0}% full and nothing synced to remove: connect to the network so inspections can reach the server",
                used_share * 100.0
            ),
        }
    }
}

/// Prunes synced snapshots when usage passed the high-water mark.
pub async fn check(db: &idb::Database) -> Result<Option<StorageNotice>, String> {
    let estimate = estimate().await?;
    let wanted = estimate.bytes_to_free();
    if wanted == 0 {
        return Ok(None);
    }
    let pruned = records::prune_synced_snapshots(db, wanted).await?;
    let used_share = estimate.used_share();
    Ok(Some(if pruned.bytes >= wanted {
        StorageNotice::Pruned { pruned, used_share }
    } else {
        StorageNotice::Full { used_share }
    }))
}
