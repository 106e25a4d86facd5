//! What the supervisors' review reads: pages of history, the numbers behind its charts, and the
//! audit trail.

use crate::{AssignmentRequest, CorrectionAction, InspectionRecord, ModelSummary};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most records one history page holds.
pub const MAX_PAGE_RECORDS: u32 = 1000;

/// `GET /api/v1/inspections`: records newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionPage {
    pub records: Vec<InspectionRecord>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/stats`: the history's numbers for charts, under the same filters. Hours, shifts
/// and days are the stations' local time (`InspectionRecord::local_time`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub per_hour: Vec<PeriodCount>,
    /// Early 06:00-14:00, late 14:00-22:00, night 22:00-06:00 (by the calendar day it falls on).
    pub per_shift: Vec<ShiftCount>,
    pub yield_per_day: Vec<DayYield>,
    /// Detections per class, most frequent first.
    pub pareto: Vec<ClassCount>,
    pub heatmap: Heatmap,
}

/// Inspections in one period (`2026-11-24T08` for an hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodCount {
    pub period: String,
    pub inspections: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftCount {
    pub date: String,
    /// `early`, `late` or `night`.
    pub shift: String,
    pub inspections: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayYield {
    pub date: String,
    pub inspections: u64,
    pub passed: u64,
    /// `passed / inspections`.
    pub yield_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    pub label: String,
    pub detections: u64,
    /// This class's and all more frequent ones' share of all detections, for the Pareto line.
    pub cumulative_share: f64,
}

/// Where on the frame defects were found: box centres, normalised to the snapshot's size, counted
/// in `bins` x `bins` cells; `counts[row * bins + column]`, row 0 at the top. Detections of
/// records without a snapshot are not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heatmap {
    pub bins: u32,
    pub counts: Vec<u64>,
}

/// The most entries one [`AuditPage`] holds.
pub const MAX_AUDIT_ENTRIES: u32 = 1000;

/// `GET /api/v1/audit`: the audit trail, newest change first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One supervisor change: who, when, to what, and the change itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number in the change sequence (what stations pull by).
    pub change_seq: u64,
    pub supervisor: String,
    pub at: DateTime<Utc>,
    /// What it was done to: an inspection id, a model id or a station.
    pub subject: String,
    /// The station it concerns: the corrected inspection's or the assigned one; `None` for a
    /// model upload.
    pub station: Option<String>,
    pub change: AuditChange,
}

/// What a change did, tagged by its kind (`kind`, the audit filter's values), with the change as
/// it was requested (`details`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "details", rename_all = "snake_case")]
pub enum AuditChange {
    CorrectInspection(CorrectionAction),
    UploadModel(ModelSummary),
    AssignStation(AssignmentRequest),
}

impl AuditChange {
    /// Every `kind`, as the audit endpoint filters by them.
    pub const KINDS: [&'static str; 3] = ["correct_inspection", "upload_model", "assign_station"];

    pub fn kind(&self) -> &'static str {
        match self {
            AuditChange::CorrectInspection(_) => Self::KINDS[0],
            AuditChange::UploadModel(_) => Self::KINDS[1],
            AuditChange::AssignStation(_) => Self::KINDS[2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_audit_change_is_its_kind_and_the_request_as_details() {
        let change = AuditChange::CorrectInspection(CorrectionAction::Delete { detection: 1 });
        let value = serde_json::to_value(&change).unwrap();
        assert_eq!(
            value,
            json!({ "kind": "correct_inspection", "details": { "kind": "delete", "detection": 1 } })
        );
        assert_eq!(value["kind"], change.kind());
        assert_eq!(
            serde_json::from_value::<AuditChange>(value).unwrap(),
            change
        );
    }
}
