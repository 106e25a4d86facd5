//! Decoding of Ultralytics-layout detector outputs and non-maximum suppression, matching
//! Ultralytics' `non_max_suppression` defaults (best class per anchor, score strictly above the
//! confidence threshold, class-aware NMS, at most `max_detections` boxes).

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
}

impl Default for NmsOptions {
    fn default() -> Self {
        Self {
            confidence: 0.25,
            iou: 0.45,
            max_detections: 300,
        }
    }
}

/// Why an output tensor cannot be decoded as detections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector output of {len} values does not fit [1, 4 + {classes}, {anchors}]")]
pub struct OutputShapeError {
    pub len: usize,
    pub classes: usize,
    pub anchors: usize,
}

/// Decodes a `[1, 4 + classes, anchors]` output (boxes as cx, cy, w, h) and applies NMS.
/// Results are sorted by descending score.
pub fn decode_and_nms(
    output: &[f32],
    classes: usize,
    anchors: usize,
    options: NmsOptions,
) -> Result<Vec<RawDetection>, OutputShapeError> {
    if classes == 0 || output.len() != (4 + classes) * anchors {
        return Err(OutputShapeError {
            len: output.len(),
            classes,
            anchors,
        });
    }
    let at = |row: usize, anchor: usize| output[row * anchors + anchor];
    let mut candidates: Vec<RawDetection> = (0..anchors)
        .filter_map(|a| {
            let (class_id, score) = (0..classes)
                .map(|c| (c, at(4 + c, a)))
                // First maximum wins on ties, like torch's argmax.
                .fold((0, f32::NEG_INFINITY), |best, cur| {
                    if cur.1 > best.1 { cur } else { best }
                });
            (score > options.confidence).then(|| {
                let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
                RawDetection {
                    class_id: class_id as u32,
                    score,
                    bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                }
            })
        })
        .collect();
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut kept: Vec<RawDetection> = Vec::new();
    for candidate in candidates {
        if kept.len() == options.max_detections {
            break;
        }
        let suppressed = kept.iter().any(|k| {
            k.class_id == candidate.class_id && iou(&k.bbox, &candidate.bbox) > options.iou
        });
        if !suppressed {
            kept.push(candidate);
        }
    }
    Ok(kept)
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a `[4 + classes, anchors]` output from (cx, cy, w, h, class scores) rows.
    fn output(anchors: &[([f32; 4], Vec<f32>)]) -> (Vec<f32>, usize) {
        let classes = anchors[0].1.len();
        let n = anchors.len();
        let mut out = vec![0.0; (4 + classes) * n];
        for (a, (bbox, scores)) in anchors.iter().enumerate() {
            for (row, v) in bbox.iter().chain(scores).enumerate() {
                out[row * n + a] = *v;
            }
        }
        (out, classes)
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_only_the_best() {
        let (out, classes) = output(&[
            ([50.0, 50.0, 20.0, 20.0], vec![0.6, 0.1]),
            ([52.0, 50.0, 20.0, 20.0], vec![0.9, 0.1]),
            ([200.0, 200.0, 10.0, 10.0], vec![0.1, 0.5]),
        ]);
        let dets = decode_and_nms(&out, classes, 3, NmsOptions::default()).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].class_id, 0);
        assert_eq!(dets[0].score, 0.9);
        assert_eq!(dets[0].bbox, [42.0, 40.0, 62.0, 60.0]);
        assert_eq!((dets[1].class_id, dets[1].score), (1, 0.5));
    }

    #[test]
    fn overlapping_boxes_of_different_classes_are_both_kept() {
        let (out, classes) = output(&[
            ([50.0, 50.0, 20.0, 20.0], vec![0.8, 0.0]),
            ([50.0, 50.0, 20.0, 20.0], vec![0.0, 0.7]),
        ]);
        let dets = decode_and_nms(&out, classes, 2, NmsOptions::default()).unwrap();
        assert_eq!(dets.len(), 2);
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
        let (out, classes) = output(&rows);
        let all = decode_and_nms(&out, classes, 10, NmsOptions::default()).unwrap();
        assert_eq!(
            all.len(),
            9,
            "the anchor at exactly 0.25 is not above the threshold"
        );
        let options = NmsOptions {
            max_detections: 3,
            ..NmsOptions::default()
        };
        let top = decode_and_nms(&out, classes, 10, options).unwrap();
        assert_eq!(
            top.iter().map(|d| d.bbox[0]).collect::<Vec<_>>(),
            [895.0, 795.0, 695.0]
        );
    }

    #[test]
    fn a_wrongly_sized_output_is_an_error() {
        let err = decode_and_nms(&[0.0; 10], 2, 3, NmsOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "detector output of 10 values does not fit [1, 4 + 2, 3]"
        );
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(
            iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]),
            50.0 / 150.0
        );
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 20.0, 30.0, 30.0]), 0.0);
    }
}
