//! What the supervisors' review reads: pages of history and the numbers behind its charts.

use crate::InspectionRecord;
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
