//! What a record's detections are after the supervisors' corrections. The training-set export
//! (its labels) and the review screen (the boxes it draws) both read corrections through
//! [`apply_corrections`], so they cannot disagree on what a list of corrections means.

use crate::{BoundingBox, CorrectionAction};

/// One detection after its corrections: the last correction that names it decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Reviewed {
    /// No supervisor has judged it.
    Unreviewed,
    Confirmed,
    Relabelled {
        class_id: u32,
        label: String,
    },
    /// Not a defect.
    Deleted,
}

/// A defect a supervisor added with a box (`CorrectionAction::MissedDefect`).
#[derive(Debug, Clone, PartialEq)]
pub struct AddedBox {
    pub class_id: u32,
    pub label: String,
    /// In the snapshot's pixels, as drawn.
    pub bbox: BoundingBox,
}

/// A record's detections after its corrections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorrectedDetections {
    /// Indexed like the record's detections.
    pub detections: Vec<Reviewed>,
    /// The missed defects, in the order they were marked.
    pub added: Vec<AddedBox>,
}

/// Applies `corrections` (in the order they were made) to a record with `detections`
/// detections. A correction naming a detection the record does not have changes nothing (the
/// server refuses those: `CorrectionAction::validate`).
pub fn apply_corrections<'a>(
    detections: usize,
    corrections: impl IntoIterator<Item = &'a CorrectionAction>,
) -> CorrectedDetections {
    let mut corrected = CorrectedDetections {
        detections: vec![Reviewed::Unreviewed; detections],
        added: vec![],
    };
    for correction in corrections {
        let (detection, reviewed) = match correction {
            CorrectionAction::Confirm { detection } => (*detection, Reviewed::Confirmed),
            CorrectionAction::Relabel {
                detection,
                class_id,
                label,
            } => (
                *detection,
                Reviewed::Relabelled {
                    class_id: *class_id,
                    label: label.clone(),
                },
            ),
            CorrectionAction::Delete { detection } => (*detection, Reviewed::Deleted),
            CorrectionAction::MissedDefect {
                class_id,
                label,
                bbox,
            } => {
                corrected.added.push(AddedBox {
                    class_id: *class_id,
                    label: label.clone(),
                    bbox: *bbox,
                });
                continue;
            }
        };
        if let Some(slot) = corrected.detections.get_mut(detection as usize) {
            *slot = reviewed;
        }
    }
    corrected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_correction_of_a_detection_decides_and_missed_defects_are_added_in_order() {
        let bbox = |x: f32| BoundingBox {
            x1: x,
            y1: 1.0,
            x2: x + 10.0,
            y2: 20.0,
        };
        let corrections = [
            CorrectionAction::Delete { detection: 0 },
            CorrectionAction::MissedDefect {
                class_id: 3,
                label: "stain".into(),
                bbox: bbox(5.0),
            },
            CorrectionAction::Relabel {
                detection: 0,
                class_id: 2,
                label: "dent".into(),
            },
            CorrectionAction::Confirm { detection: 2 },
            CorrectionAction::Delete { detection: 7 },
            CorrectionAction::MissedDefect {
                class_id: 0,
                label: "scratch".into(),
                bbox: bbox(50.0),
            },
        ];
        let corrected = apply_corrections(3, &corrections);
        assert_eq!(
            corrected.detections,
            vec![
                Reviewed::Relabelled {
                    class_id: 2,
                    label: "dent".into()
                },
                Reviewed::Unreviewed,
                Reviewed::Confirmed,
            ]
        );
        let added: Vec<_> = corrected
            .added
            .iter()
            .map(|a| (a.class_id, a.bbox.x1))
            .collect();
        assert_eq!(added, vec![(3, 5.0), (0, 50.0)]);
        assert_eq!(
            apply_corrections(2, []).detections,
            vec![Reviewed::Unreviewed; 2]
        );
    }
}
