//! Decoding of Ultralytics-layout detector outputs and non-maximum suppression, matching
//! Ultralytics' `non_max_suppression` defaults (best class per anchor, score strictly above the
//! confidence threshold, at most `max_nms` candidates, class-aware NMS, at most `max_detections`
//! boxes). This is the CPU reference; the GPU runs the same definition in `decode_boxes.wgsl` and
//! `nms.wgsl`, and both give identical detections (`tests/detections.rs`).

use crate::end_to_end::{self, EndToEndError, decode_end_to_end};

/// A detection in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawDetection {
    pub class_id: u32,
    pub score: f32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsOptions {
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
    /// Candidates above the confidence threshold that go to NMS, the best-scoring first
    /// (Ultralytics' `max_nms`): bounds the NMS's work when a low threshold lets most anchors in.
    pub max_candidates: usize,
}

impl Default for NmsOptions {
    fn default() -> Self {
        Self {
            confidence: 0.25,
            iou: 0.45,
            max_detections: 300,
            max_candidates: 30_000,
        }
    }
}

/// How a detector's first output holds its predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `[1, 4 + classes, anchors]`: per anchor a box as cx, cy, w, h, then one score per class
    /// (Ultralytics YOLOv8/YOLO11 detect exports, LineCheck's own models). Decoding picks the
    /// best class per anchor, keeps scores above the confidence threshold and runs NMS.
    Anchors { classes: usize, anchors: usize },
    /// `[1, rows, 6]`: an end-to-end (NMS-free) head's chosen boxes, best first (YOLO26's
    /// end-to-end export); decoding only applies the threshold (`end_to_end.rs`). `classes`
    /// bounds the class ids where the model names its classes.
    EndToEnd { rows: usize, classes: Option<usize> },
}

impl OutputLayout {
    /// Values the output holds.
    pub fn len(&self) -> usize {
        match *self {
            OutputLayout::Anchors { classes, anchors } => (4 + classes) * anchors,
            OutputLayout::EndToEnd { rows, .. } => rows * end_to_end::ROW,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an output of `len` values can be decoded with this layout.
    pub fn check(&self, len: usize) -> Result<(), OutputShapeError> {
        let no_classes = matches!(self, OutputLayout::Anchors { classes: 0, .. });
        if no_classes || len != self.len() {
            return Err(OutputShapeError { len, layout: *self });
        }
        Ok(())
    }
}

impl std::fmt::Display for OutputLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputLayout::Anchors { classes, anchors } => {
                write!(f, "[1, 4 + {classes}, {anchors}]")
            }
            OutputLayout::EndToEnd { rows, .. } => write!(f, "[1, {rows}, {}]", end_to_end::ROW),
        }
    }
}

/// Why an output tensor cannot be decoded as detections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector output of {len} values does not fit {layout}")]
pub struct OutputShapeError {
    pub len: usize,
    pub layout: OutputLayout,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Shape(#[from] OutputShapeError),
    #[error(transparent)]
    EndToEnd(#[from] EndToEndError),
}

/// A box that passed the confidence threshold, before NMS. The GPU kernels
/// (`decode_boxes.wgsl`, `nms.wgsl`) hold the same fields and compute them the same way.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    detection: RawDetection,
    /// The anchor it came from: breaks ties between equal scores.
    anchor: u32,
    /// `(x2 - x1) * (y2 - y1)`, each side clamped at 0, rounded to f32 once.
    area: f32,
}

/// Decodes a detector output and applies NMS. Results are sorted by descending score.
///
/// Defined so that the GPU path (`GpuNetwork`) gives exactly the same detections:
/// - per anchor, the class with the highest score (the first on ties, like torch's argmax),
///   kept where that score is strictly above `confidence`; corners are `cx ∓ w * 0.5`;
/// - candidates ordered by descending score (`f32::total_cmp`), equal scores by anchor index;
/// - only the first `max_candidates` of that order go to NMS (Ultralytics' `max_nms`);
/// - greedy class-aware NMS: a candidate is dropped when a kept box of its class overlaps it,
///   `inter * (1 + iou) > iou * (area_a + area_b)` (IoU above the threshold, written without a
///   division or a product feeding a sum, which GPUs may round differently or fuse);
/// - at most `max_detections` boxes.
pub fn decode_and_nms(
    output: &[f32],
    layout: OutputLayout,
    options: NmsOptions,
) -> Result<Vec<RawDetection>, DecodeError> {
    layout.check(output.len())?;
    let (classes, anchors) = match layout {
        OutputLayout::Anchors { classes, anchors } => (classes, anchors),
        OutputLayout::EndToEnd { classes, .. } => {
            return Ok(decode_end_to_end(output, classes, options)?);
        }
    };
    let at = |row: usize, anchor: usize| output[row * anchors + anchor];
    let mut candidates: Vec<Candidate> = (0..anchors)
        .filter_map(|a| {
            let (class_id, score) = (0..classes)
                .map(|c| (c, at(4 + c, a)))
                // First maximum wins on ties, like torch's argmax.
                .fold((0, f32::NEG_INFINITY), |best, cur| {
                    if cur.1 > best.1 { cur } else { best }
                });
            (score > options.confidence).then(|| {
                let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
                let bbox = [cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5];
                Candidate {
                    detection: RawDetection {
                        class_id: class_id as u32,
                        score,
                        bbox,
                    },
                    anchor: a as u32,
                    area: (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0),
                }
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.detection
            .score
            .total_cmp(&a.detection.score)
            .then(a.anchor.cmp(&b.anchor))
    });
    candidates.truncate(options.max_candidates);

    let mut kept: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        if kept.len() == options.max_detections {
            break;
        }
        let suppressed = kept.iter().any(|k| {
            k.detection.class_id == candidate.detection.class_id
                && overlaps(k, &candidate, options.iou)
        });
        if !suppressed {
            kept.push(candidate);
        }
    }
    Ok(kept.into_iter().map(|c| c.detection).collect())
}

/// IoU of two candidates above `iou`, as `nms.wgsl` computes it: every float operation is a
/// single correctly rounded add, subtract or multiply, and no product feeds a sum (a GPU may
/// fuse those into an FMA), so both backends round alike.
fn overlaps(a: &Candidate, b: &Candidate, iou: f32) -> bool {
    let (p, q) = (&a.detection.bbox, &b.detection.bbox);
    let iw = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
    let ih = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
    (iw * ih) * (1.0 + iou) > iou * (a.area + b.area)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a `[4 + classes, anchors]` output from (cx, cy, w, h, class scores) rows.
    fn output(anchors: &[([f32; 4], Vec<f32>)]) -> (Vec<f32>, OutputLayout) {
        let classes = anchors[0].1.len();
        let n = anchors.len();
        let mut out = vec![0.0; (4 + classes) * n];
        for (a, (bbox, scores)) in anchors.iter().enumerate() {
            for (row, v) in bbox.iter().chain(scores).enumerate() {
                out[row * n + a] = *v;
            }
        }
        (
            out,
            OutputLayout::Anchors {
                classes,
                anchors: n,
            },
        )
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_only_the_best() {
        let (out, layout) = output(&[
            ([50.0, 50.0, 20.0, 20.0], vec![0.6, 0.1]),
            ([52.0, 50.0, 20.0, 20.0], vec![0.9, 0.1]),
            ([200.0, 200.0, 10.0, 10.0], vec![0.1, 0.5]),
        ]);
        let dets = decode_and_nms(&out, layout, NmsOptions::default()).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].class_id, 0);
        assert_eq!(dets[0].score, 0.9);
        assert_eq!(dets[0].bbox, [42.0, 40.0, 62.0, 60.0]);
        assert_eq!((dets[1].class_id, dets[1].score), (1, 0.5));
    }

    #[test]
    fn overlapping_boxes_of_different_classes_are_both_kept() {
        let (out, layout) = output(&[
            ([50.0, 50.0, 20.0, 20.0], vec![0.8, 0.0]),
            ([50.0, 50.0, 20.0, 20.0], vec![0.0, 0.7]),
        ]);
        let dets = decode_and_nms(&out, layout, NmsOptions::default()).unwrap();
        assert_eq!(dets.len(), 2);
    }

    #[test]
    fn equal_scores_are_ordered_by_anchor_and_the_first_class_wins_a_tie() {
        let (out, layout) = output(&[
            ([300.0, 0.0, 10.0, 10.0], vec![0.5, 0.7, 0.7]),
            ([100.0, 0.0, 10.0, 10.0], vec![0.7, 0.2, 0.7]),
            ([200.0, 0.0, 10.0, 10.0], vec![0.7, 0.7, 0.1]),
        ]);
        let dets = decode_and_nms(&out, layout, NmsOptions::default()).unwrap();
        let found: Vec<_> = dets.iter().map(|d| (d.bbox[0], d.class_id)).collect();
        assert_eq!(found, [(295.0, 1), (95.0, 0), (195.0, 0)]);
    }

    #[test]
    fn scores_at_the_threshold_are_dropped_and_max_detections_is_honoured() {
        let rows: Vec<_> = (0..10)
            .map(|i| {
                (
                    [i as f32 * 100.0, 0.0, 10.0, 10.0],
                    vec![0.25 + i as f32 * 0.01],
                )
            })
            .collect();
        let (out, layout) = output(&rows);
        let all = decode_and_nms(&out, layout, NmsOptions::default()).unwrap();
        assert_eq!(
            all.len(),
            9,
            "the anchor at exactly 0.25 is not above the threshold"
        );
        let options = NmsOptions {
            max_detections: 3,
            ..NmsOptions::default()
        };
        let top = decode_and_nms(&out, layout, options).unwrap();
        assert_eq!(
            top.iter().map(|d| d.bbox[0]).collect::<Vec<_>>(),
            [895.0, 795.0, 695.0]
        );
    }

    #[test]
    fn only_the_best_max_candidates_reach_nms() {
        // The best box would suppress the second; with one candidate, the rest never compete.
        let (out, layout) = output(&[
            ([50.0, 50.0, 20.0, 20.0], vec![0.8]),
            ([51.0, 50.0, 20.0, 20.0], vec![0.9]),
            ([300.0, 50.0, 20.0, 20.0], vec![0.7]),
        ]);
        let options = |max_candidates| NmsOptions {
            max_candidates,
            ..NmsOptions::default()
        };
        let scores = |n| -> Vec<f32> {
            decode_and_nms(&out, layout, options(n))
                .unwrap()
                .iter()
                .map(|d| d.score)
                .collect()
        };
        assert_eq!(scores(3), [0.9, 0.7]);
        assert_eq!(scores(1), [0.9]);
        assert_eq!(scores(0), Vec::<f32>::new());
    }

    #[test]
    fn a_wrongly_sized_output_is_an_error() {
        let layout = OutputLayout::Anchors {
            classes: 2,
            anchors: 3,
        };
        let err = decode_and_nms(&[0.0; 10], layout, NmsOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detector output of 10 values does not fit [1, 4 + 2, 3]"
        );
    }

    #[test]
    fn overlap_is_iou_above_the_threshold() {
        let candidate = |bbox: [f32; 4]| Candidate {
            detection: RawDetection {
                class_id: 0,
                score: 1.0,
                bbox,
            },
            anchor: 0,
            area: (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]),
        };
        let a = candidate([0.0, 0.0, 10.0, 10.0]);
        // IoU 50 / 150 = 1/3.
        let third = candidate([5.0, 0.0, 15.0, 10.0]);
        assert!(overlaps(&a, &third, 0.33));
        assert!(!overlaps(&a, &third, 0.34));
        assert!(overlaps(&a, &a, 0.99));
        assert!(!overlaps(&a, &candidate([20.0, 20.0, 30.0, 30.0]), 0.0));
        // Degenerate boxes (no area) overlap nothing.
        let point = candidate([5.0, 5.0, 5.0, 5.0]);
        assert!(!overlaps(&point, &point, 0.0));
    }
}
