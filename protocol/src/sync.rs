//! The sync protocol: how a kiosk hands its outbox to the server, exactly once.
//!
//! # The exactly-once contract
//!
//! A kiosk keeps every record in its outbox until the server has *acknowledged* it, and may send
//! any record any number of times, in any batch and order. The server makes that safe:
//!
//! - A record is identified by its `id`, which the kiosk generates once. The server stores each
//!   id at most once; sending it again answers [`PushStatus::AlreadyApplied`] and changes nothing.
//! - A batch applies in one transaction: either every [`PushStatus::Applied`] in the response is
//!   durably stored, or the request fails as a whole (no response, a 5xx, a dropped connection)
//!   and nothing of it is stored. A lost response is therefore always safe to answer by resending.
//! - `(device_id, sequence)` is unique: a second record that claims a sequence already taken by
//!   another id is rejected, never stored beside the first.
//! - A record that names a snapshot is stored only once the snapshot's bytes are: the kiosk
//!   uploads the snapshot (`PUT /api/v1/snapshots/{sha256}`) before pushing the record.
//!
//! The kiosk may remove a record from its outbox only when [`PushStatus::is_stored`] says so. A
//! retryable rejection is sent again once its cause is fixed (the reason says how); a record
//! rejected as not retryable stays on the kiosk for a person to look at, and is never dropped.

use crate::InspectionRecord;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The largest push body a server accepts; a kiosk sizes its batches below it.
pub const MAX_PUSH_BYTES: usize = 4 * 1024 * 1024;

/// The largest snapshot a server accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;

/// `POST /api/v1/sync/push`: some records of one device's outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// Checked before anything else, so a kiosk of another version gets a clear "update" error.
    pub protocol_version: u32,
    /// The device whose outbox this is; every record carries the same `device_id`.
    pub device_id: Uuid,
    pub records: Vec<InspectionRecord>,
}

/// The answer to a [`PushRequest`]: one result per record, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    pub results: Vec<PushItemResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushItemResult {
    pub id: Uuid,
    #[serde(flatten)]
    pub status: PushStatus,
}

/// What became of one pushed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PushStatus {
    /// Stored by this request.
    Applied,
    /// Stored by an earlier request, with the same content.
    AlreadyApplied,
    /// Not stored. `retryable`: the same record can succeed later once `reason` is dealt with
    /// (such as a snapshot not uploaded yet); otherwise it never will.
    Rejected { reason: String, retryable: bool },
}

impl PushStatus {
    /// Whether the server holds the record, so the kiosk may clear it from its outbox.
    pub fn is_stored(&self) -> bool {
        matches!(self, PushStatus::Applied | PushStatus::AlreadyApplied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_results_are_flat_objects_tagged_by_status() {
        let id = Uuid::from_u128(7);
        let cases = [
            (
                PushStatus::Applied,
                json!({ "id": id, "status": "applied" }),
            ),
            (
                PushStatus::AlreadyApplied,
                json!({ "id": id, "status": "already_applied" }),
            ),
            (
                PushStatus::Rejected {
                    reason: "upload the snapshot first".into(),
                    retryable: true,
                },
                json!({
                    "id": id,
                    "status": "rejected",
                    "reason": "upload the snapshot first",
                    "retryable": true,
                }),
            ),
        ];
        for (status, expected) in cases {
            let response = PushResponse {
                results: vec![PushItemResult { id, status }],
            };
            let value = serde_json::to_value(&response).unwrap();
            assert_eq!(value, json!({ "results": [expected] }));
            let back: PushResponse = serde_json::from_value(value).unwrap();
            assert_eq!(back, response);
        }
    }

    #[test]
    fn only_applied_and_already_applied_let_the_kiosk_clear_its_outbox() {
        assert!(PushStatus::Applied.is_stored());
        assert!(PushStatus::AlreadyApplied.is_stored());
        for retryable in [true, false] {
            let rejected = PushStatus::Rejected {
                reason: "no".into(),
                retryable,
            };
            assert!(!rejected.is_stored());
        }
    }

    #[test]
    fn push_request_round_trips_and_names_its_fields() {
        let request = PushRequest {
            protocol_version: crate::PROTOCOL_VERSION,
            device_id: Uuid::from_u128(1),
            records: vec![],
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            value,
            json!({
                "protocol_version": crate::PROTOCOL_VERSION,
                "device_id": "00000000-0000-0000-0000-000000000001",
                "records": [],
            })
        );
        assert_eq!(
            serde_json::from_value::<PushRequest>(value).unwrap(),
            request
        );
    }
}
