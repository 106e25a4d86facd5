//! Inspection records and the sync protocol shared by the kiosk and the server.
//!
//! This crate knows nothing of HTTP, IndexedDB or SQL: it defines what an inspection *is*, how its
//! verdict follows from its detections, and what makes a record valid. Both sides call the same
//! functions, so a kiosk and a server can never disagree on a verdict or on validity.

mod corrected;
mod record;
mod review;
mod supervisor;
mod sync;

pub use corrected::{AddedBox, CorrectedDetections, Reviewed, apply_corrections};
pub use record::{
    BoundingBox, ClassThreshold, Detection, InspectionRecord, ModelRef, OperatorDecision, Outcome,
    SnapshotRef, ValidationError, Verdict, threshold_for, verdict_for,
};
pub use review::{
    AuditChange, AuditEntry, AuditPage, ClassCount, DayYield, Heatmap, InspectionPage,
    MAX_AUDIT_ENTRIES, MAX_PAGE_RECORDS, PeriodCount, ShiftCount, Stats,
};
pub use supervisor::{
    EnrollStationRequest, EnrolledStation, LoginRequest, ModelSummary, SessionInfo, StationSummary,
};
pub use sync::{
    AssignmentRequest, Correction, CorrectionAction, MAX_PULL_CORRECTIONS, MAX_PUSH_BYTES,
    MAX_SNAPSHOT_BYTES, ModelAssignment, PullResponse, PushItemResult, PushRequest, PushResponse,
    PushStatus, StationSettings,
};

/// The version of the record and sync formats. A server answers a kiosk with another major
/// version with a clear "upgrade" error instead of misreading its data.
pub const PROTOCOL_VERSION: u32 = 1;

/// Why two protocol versions cannot talk to each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "protocol version {client} is not supported by this server (it speaks {server}); update the kiosk"
)]
pub struct VersionMismatch {
    pub client: u32,
    pub server: u32,
}

/// Accepts a peer that speaks exactly our version. The format is young: there is no older version
/// to stay compatible with yet, so anything else is refused with the reason.
pub fn check_version(client: u32) -> Result<(), VersionMismatch> {
    if client == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(VersionMismatch {
            client,
            server: PROTOCOL_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_version_is_accepted_and_others_are_named_in_the_error() {
        assert_eq!(check_version(PROTOCOL_VERSION), Ok(()));
        let err = check_version(PROTOCOL_VERSION + 1).unwrap_err();
        assert_eq!(err.client, PROTOCOL_VERSION + 1);
        assert!(err.to_string().contains("update the kiosk"));
    }
}
