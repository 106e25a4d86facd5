//! Decoding of end-to-end (NMS-free) detector outputs such as YOLO26's default head: `[1, K, 6]`,
//! one row per detection (x1, y1, x2, y2, score, class), best first. The model has already
//! chosen its boxes, so there is no NMS: Ultralytics keeps the rows scoring above the confidence
//! threshold, in order, at most `max_detections` of them (`non_max_suppression`'s end-to-end
//! branch), and so does this.

use crate::postprocess::{NmsOptions, RawDetection};

/// Values per row of an end-to-end output.
pub const ROW: usize = 6;

/// Why an end-to-end output cannot be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EndToEndError {
    #[error("end-to-end detector output of {0} values is not rows of 6")]
    Shape(usize),
    #[error("end-to-end detection {row} has class {class}, not one of the model's {classes}")]
    Class {
        row: usize,
        class: f32,
        classes: usize,
    },
}

/// Detections in model-input pixels from a `[1, K, 6]` output; `classes` bounds the class ids
/// where the model names its classes.
pub fn decode_end_to_end(
    output: &[f32],
    classes: Option<usize>,
    options: NmsOptions,
) -> Result<Vec<RawDetection>, EndToEndError> {
    if !output.len().is_multiple_of(ROW) {
        return Err(EndToEndError::Shape(output.len()));
    }
    output
        .as_chunks::<ROW>()
        .0
        .iter()
        .enumerate()
        .filter(|(_, row)| row[4] > options.confidence)
        .take(options.max_detections)
        .map(|(i, row)| {
            let class = row[5];
            let valid = class >= 0.0
                && class.fract() == 0.0
                && classes.is_none_or(|c| (class as usize) < c);
            if !valid {
                return Err(EndToEndError::Class {
                    row: i,
                    class,
                    classes: classes.unwrap_or(0),
                });
            }
            Ok(RawDetection {
                class_id: class as u32,
                score: row[4],
                bbox: [row[0], row[1], row[2], row[3]],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_above_the_threshold_are_kept_in_order_without_nms() {
        #[rustfmt::skip]
        let out = [
            10.0, 10.0, 50.0, 50.0, 0.9, 1.0,
            12.0, 10.0, 52.0, 50.0, 0.8, 1.0, // overlaps the first: NMS-free models keep it
            0.0, 0.0, 5.0, 5.0, 0.25, 0.0,    // at the threshold: dropped
            0.0, 0.0, 5.0, 5.0, 0.1, 0.0,
        ];
        let dets = decode_end_to_end(&out, Some(2), NmsOptions::default()).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[1].bbox, [12.0, 10.0, 52.0, 50.0]);
        assert_eq!((dets[0].class_id, dets[0].score), (1, 0.9));
        let one = NmsOptions {
            max_detections: 1,
            ..NmsOptions::default()
        };
        assert_eq!(decode_end_to_end(&out, None, one).unwrap().len(), 1);
    }

    #[test]
    fn bad_classes_and_shapes_are_errors() {
        let out = [0.0, 0.0, 1.0, 1.0, 0.9, 3.0];
        let err = decode_end_to_end(&out, Some(3), NmsOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "end-to-end detection 0 has class 3, not one of the model's 3"
        );
        assert!(decode_end_to_end(&out, None, NmsOptions::default()).is_ok());
        assert!(decode_end_to_end(&out[..5], None, NmsOptions::default()).is_err());
    }
}
