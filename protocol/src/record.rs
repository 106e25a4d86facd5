use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An axis-aligned box in the pixels of the original camera frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// One object the detector found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class_id: u32,
    pub label: String,
    pub score: f32,
    pub bbox: BoundingBox,
}

/// The confidence above which a detection of one class fails a part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassThreshold {
    pub class_id: u32,
    pub threshold: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// What the operator did with the automatic verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperatorDecision {
    Confirmed,
    OverriddenOk { reason: String },
    OverriddenNok { reason: String },
    Unsure,
}

/// A part's final state once the operator has decided: what shift counters and yield count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Nok,
    Unsure,
}

impl OperatorDecision {
    /// The outcome of the automatic `verdict` after this decision.
    pub fn outcome(&self, verdict: Verdict) -> Outcome {
        match (self, verdict) {
            (OperatorDecision::Confirmed, Verdict::Pass)
            | (OperatorDecision::OverriddenOk { .. }, _) => Outcome::Ok,
            (OperatorDecision::Confirmed, Verdict::Fail)
            | (OperatorDecision::OverriddenNok { .. }, _) => Outcome::Nok,
            (OperatorDecision::Unsure, _) => Outcome::Unsure,
        }
    }
}

/// The model that made the call, so a supervisor can tell which version judged a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub id: String,
    pub version: String,
}

/// A snapshot is stored content-addressed: the record names it by hash, the bytes travel apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Lower-case hex SHA-256 of the JPEG bytes.
    pub sha256: String,
    pub byte_len: u64,
}

/// One inspection of one part, as the kiosk records it and the server stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionRecord {
    /// Generated on the kiosk, so a record keeps its identity across retries and offline days.
    pub id: Uuid,
    pub device_id: Uuid,
    /// Per-device, strictly increasing: the server's cursor of what it has applied.
    pub sequence: u64,
    pub inspected_at: DateTime<Utc>,
    /// The station's wall clock at the time, with its offset, for shift reports in local time.
    pub local_time: DateTime<FixedOffset>,
    pub station: String,
    pub line: String,
    pub operator: String,
    pub part_serial: String,
    pub lot: String,
    pub model: ModelRef,
    /// Threshold for classes not listed in `thresholds`.
    pub default_threshold: f32,
    pub thresholds: Vec<ClassThreshold>,
    pub detections: Vec<Detection>,
    pub verdict: Verdict,
    pub decision: OperatorDecision,
    pub snapshot: Option<SnapshotRef>,
}

/// The threshold of `class_id`: its own if listed, else the default.
pub fn threshold_for(thresholds: &[ClassThreshold], default_threshold: f32, class_id: u32) -> f32 {
    thresholds
        .iter()
        .find(|t| t.class_id == class_id)
        .map_or(default_threshold, |t| t.threshold)
}

/// The automatic verdict: FAIL when any detection reaches its class threshold.
pub fn verdict_for(
    detections: &[Detection],
    thresholds: &[ClassThreshold],
    default_threshold: f32,
) -> Verdict {
    if detections
        .iter()
        .any(|d| d.score >= threshold_for(thresholds, default_threshold, d.class_id))
    {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// A record that must not be stored, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inspection record: {field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        reason: reason.into(),
    }
}

const MAX_TEXT_LEN: usize = 200;

pub(crate) fn check_text(field: &str, value: &str, required: bool) -> Result<(), ValidationError> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(invalid(
            field,
            format!("longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_probability(field: &str, value: f32) -> Result<(), ValidationError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("{value} is not within 0..=1")))
    }
}

pub(crate) fn check_bbox(field: &str, b: BoundingBox) -> Result<(), ValidationError> {
    let finite = [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite());
    if !finite || b.x2 < b.x1 || b.y2 < b.y1 {
        return Err(invalid(field, "must be finite with x1 <= x2 and y1 <= y2"));
    }
    Ok(())
}

impl InspectionRecord {
    /// Checks everything a record must satisfy before either side stores it, including that its
    /// verdict is the one its detections and thresholds imply.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_text("station", &self.station, true)?;
        check_text("line", &self.line, true)?;
        check_text("operator", &self.operator, true)?;
        check_text("part_serial", &self.part_serial, false)?;
        check_text("lot", &self.lot, false)?;
        check_text("model.id", &self.model.id, true)?;
        check_text("model.version", &self.model.version, true)?;
        check_probability("default_threshold", self.default_threshold)?;
        for (i, t) in self.thresholds.iter().enumerate() {
            check_probability(&format!("thresholds[{i}].threshold"), t.threshold)?;
        }
        for (i, d) in self.detections.iter().enumerate() {
            check_probability(&format!("detections[{i}].score"), d.score)?;
            check_text(&format!("detections[{i}].label"), &d.label, true)?;
            check_bbox(&format!("detections[{i}].bbox"), d.bbox)?;
        }
        if let OperatorDecision::OverriddenOk { reason }
        | OperatorDecision::OverriddenNok { reason } = &self.decision
        {
            check_text("decision.reason", reason, true)?;
        }
        if let Some(snapshot) = &self.snapshot {
            let is_hex_sha256 = snapshot.sha256.len() == 64
                && snapshot
                    .sha256
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            if !is_hex_sha256 {
                return Err(invalid(
                    "snapshot.sha256",
                    "must be 64 lower-case hex digits",
                ));
            }
        }
        let expected = verdict_for(&self.detections, &self.thresholds, self.default_threshold);
        if self.verdict != expected {
            return Err(invalid(
                "verdict",
                format!(
                    "is {:?} but the detections and thresholds give {expected:?}",
                    self.verdict
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_decides_the_outcome_and_confirming_keeps_the_verdict() {
        let reason = || "false alarm".to_string();
        let cases = [
            (OperatorDecision::Confirmed, Verdict::Pass, Outcome::Ok),
            (OperatorDecision::Confirmed, Verdict::Fail, Outcome::Nok),
            (
                OperatorDecision::OverriddenOk { reason: reason() },
                Verdict::Fail,
                Outcome::Ok,
            ),
            (
                OperatorDecision::OverriddenNok { reason: reason() },
                Verdict::Pass,
                Outcome::Nok,
            ),
            (OperatorDecision::Unsure, Verdict::Fail, Outcome::Unsure),
            (OperatorDecision::Unsure, Verdict::Pass, Outcome::Unsure),
        ];
        for (decision, verdict, outcome) in cases {
            assert_eq!(
                decision.outcome(verdict),
                outcome,
                "{decision:?} on {verdict:?}"
            );
        }
    }

    fn detection(class_id: u32, score: f32) -> Detection {
        Detection {
            class_id,
            label: format!("class{class_id}"),
            score,
            bbox: BoundingBox {
                x1: 10.0,
                y1: 20.0,
                x2: 30.0,
                y2: 40.0,
            },
        }
    }

    fn record() -> InspectionRecord {
        let now = Utc::now();
        let detections = vec![detection(0, 0.9), detection(1, 0.3)];
        let thresholds = vec![ClassThreshold {
            class_id: 1,
            threshold: 0.2,
        }];
        InspectionRecord {
            id: Uuid::new_v4(),
            device_id: Uuid::new_v4(),
            sequence: 7,
            inspected_at: now,
            local_time: now.with_timezone(&FixedOffset::east_opt(3600).unwrap()),
            station: "ST-04".into(),
            line: "Line 2".into(),
            operator: "badge-1182".into(),
            part_serial: "SN-0001".into(),
            lot: "LOT-77".into(),
            model: ModelRef {
                id: "linecheck-defects".into(),
                version: "1".into(),
            },
            verdict: verdict_for(&detections, &thresholds, 0.5),
            default_threshold: 0.5,
            thresholds,
            detections,
            decision: OperatorDecision::Confirmed,
            snapshot: Some(SnapshotRef {
                sha256: "ab".repeat(32),
                byte_len: 1234,
            }),
        }
    }

    #[test]
    fn verdict_uses_per_class_thresholds_with_default_for_the_rest() {
        let t = [ClassThreshold {
            class_id: 2,
            threshold: 0.8,
        }];
        assert_eq!(verdict_for(&[], &t, 0.5), Verdict::Pass);
        assert_eq!(verdict_for(&[detection(2, 0.7)], &t, 0.5), Verdict::Pass);
        assert_eq!(verdict_for(&[detection(2, 0.8)], &t, 0.5), Verdict::Fail);
        assert_eq!(verdict_for(&[detection(3, 0.5)], &t, 0.5), Verdict::Fail);
        assert_eq!(verdict_for(&[detection(3, 0.49)], &t, 0.5), Verdict::Pass);
    }

    #[test]
    fn record_round_trips_through_json_unchanged() {
        let r = record();
        r.validate().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: InspectionRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(
            json.contains(r#""decision":{"kind":"confirmed"}"#),
            "{json}"
        );
    }

    type Spoil = Box<dyn Fn(&mut InspectionRecord)>;

    #[test]
    fn validation_names_the_field_at_fault() {
        let cases: Vec<(&str, Spoil)> = vec![
            ("station", Box::new(|r| r.station = "  ".into())),
            ("operator", Box::new(|r| r.operator = "x".repeat(201))),
            (
                "detections[1].score",
                Box::new(|r| r.detections[1].score = 1.5),
            ),
            (
                "detections[0].bbox",
                Box::new(|r| r.detections[0].bbox.x2 = f32::NAN),
            ),
            (
                "thresholds[0].threshold",
                Box::new(|r| r.thresholds[0].threshold = -0.1),
            ),
            (
                "snapshot.sha256",
                Box::new(|r| r.snapshot.as_mut().unwrap().sha256 = "AB".repeat(32)),
            ),
            ("verdict", Box::new(|r| r.verdict = Verdict::Pass)),
            (
                "decision.reason",
                Box::new(|r| r.decision = OperatorDecision::OverriddenOk { reason: "".into() }),
            ),
        ];
        for (field, spoil) in cases {
            let mut r = record();
            spoil(&mut r);
            let err = r.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }
}
