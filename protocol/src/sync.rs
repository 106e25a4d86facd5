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
//!
//! # Pull
//!
//! What supervisors change for a station travels the other way: `GET /api/v1/sync/pull?since=C`
//! (with the station token and `protocol_version`) answers a [`PullResponse`] of what changed for
//! this station after cursor `C`, and the cursor to send next time. Every change the server makes
//! takes the next number of one database-wide, monotonically increasing change sequence, in the
//! transaction that makes it; changes commit in that order, so a change numbered at or below a
//! returned cursor is never missed. A kiosk starts from cursor 0, stores the cursor only after it
//! has applied the response, and pulls again at once while `more` is true. Applying a response
//! twice is harmless: settings are the whole current state, and corrections carry their ids.

use crate::{
    BoundingBox, ClassThreshold, InspectionRecord, ValidationError,
    record::{check_bbox, check_probability, check_text, invalid},
};
use chrono::{DateTime, Utc};
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

/// The most corrections one [`PullResponse`] carries; `more` says when others wait.
pub const MAX_PULL_CORRECTIONS: usize = 500;

/// `GET /api/v1/sync/pull`: what changed for the pulling station after `since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub protocol_version: u32,
    /// Send as `since` in the next pull.
    pub cursor: u64,
    /// The station's whole current settings, when they changed after `since`.
    pub settings: Option<StationSettings>,
    /// Supervisor corrections of this station's records, in the order they were made.
    pub corrections: Vec<Correction>,
    /// More changes are waiting: pull again with `cursor` right away.
    pub more: bool,
}

/// What a supervisor set for a station: the model it runs and when a detection fails a part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationSettings {
    /// `None`: the kiosk keeps the model its build ships.
    pub model: Option<ModelAssignment>,
    pub default_threshold: f32,
    pub thresholds: Vec<ClassThreshold>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// The model a station is to run, and where to download it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAssignment {
    /// The server's id of the upload: `name@version`.
    pub id: String,
    /// What the kiosk writes into its records' `model` (`ModelRef`).
    pub name: String,
    pub version: String,
    /// Lower-case hex SHA-256 of the ONNX bytes, also the download's ETag.
    pub sha256: String,
    pub byte_len: u64,
    /// Server-relative: `/api/v1/models/{id}/file`.
    pub download_url: String,
}

/// `PUT /api/v1/stations/{station}/assignment`: a station's model and thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRequest {
    /// An uploaded model's id (`name@version`), or `None` for the build's own model.
    pub model_id: Option<String>,
    pub default_threshold: f32,
    pub thresholds: Vec<ClassThreshold>,
}

/// The most per-class thresholds a station's settings hold.
pub const MAX_CLASS_THRESHOLDS: usize = 1000;

impl AssignmentRequest {
    /// Thresholds within 0..=1, at most one per class.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_probability("default_threshold", self.default_threshold)?;
        if self.thresholds.len() > MAX_CLASS_THRESHOLDS {
            return Err(invalid(
                "thresholds",
                format!("more than {MAX_CLASS_THRESHOLDS} entries"),
            ));
        }
        for (i, t) in self.thresholds.iter().enumerate() {
            check_probability(&format!("thresholds[{i}].threshold"), t.threshold)?;
            if self.thresholds[..i]
                .iter()
                .any(|o| o.class_id == t.class_id)
            {
                return Err(invalid(
                    format!("thresholds[{i}].class_id"),
                    format!("class {} is listed twice", t.class_id),
                ));
            }
        }
        Ok(())
    }
}

/// A supervisor's correction of one stored inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    pub id: Uuid,
    pub inspection_id: Uuid,
    pub action: CorrectionAction,
    pub supervisor: String,
    pub corrected_at: DateTime<Utc>,
}

/// What a correction says about the record's detections (indexes into its `detections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CorrectionAction {
    /// The detection is right.
    Confirm { detection: u32 },
    /// The detection found a defect, of another class.
    Relabel {
        detection: u32,
        class_id: u32,
        label: String,
    },
    /// The detection is not a defect.
    Delete { detection: u32 },
    /// A defect the model missed, in the pixels of the record's snapshot.
    MissedDefect {
        class_id: u32,
        label: String,
        bbox: BoundingBox,
    },
}

impl CorrectionAction {
    /// Checks the action against the record it corrects, which has `detections` detections.
    pub fn validate(&self, detections: usize) -> Result<(), ValidationError> {
        let detection = match self {
            CorrectionAction::Confirm { detection } | CorrectionAction::Delete { detection } => {
                Some(*detection)
            }
            CorrectionAction::Relabel {
                detection, label, ..
            } => {
                check_text("label", label, true)?;
                Some(*detection)
            }
            CorrectionAction::MissedDefect { label, bbox, .. } => {
                check_text("label", label, true)?;
                check_bbox("bbox", *bbox)?;
                None
            }
        };
        match detection {
            Some(index) if index as usize >= detections => Err(invalid(
                "detection",
                format!("the record has {detections} detections, so there is no detection {index}"),
            )),
            _ => Ok(()),
        }
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
    fn pull_response_round_trips_with_tagged_corrections() {
        let response = PullResponse {
            protocol_version: crate::PROTOCOL_VERSION,
            cursor: 42,
            settings: None,
            corrections: vec![Correction {
                id: Uuid::from_u128(3),
                inspection_id: Uuid::from_u128(4),
                action: CorrectionAction::Relabel {
                    detection: 0,
                    class_id: 2,
                    label: "dent".into(),
                },
                supervisor: "maria".into(),
                corrected_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            }],
            more: false,
        };
        let value = serde_json::to_value(&response).unwrap();
        assert_eq!(
            value["corrections"][0]["action"],
            json!({ "kind": "relabel", "detection": 0, "class_id": 2, "label": "dent" })
        );
        assert_eq!(
            serde_json::from_value::<PullResponse>(value).unwrap(),
            response
        );
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
