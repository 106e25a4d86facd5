//! `GET /api/v1/training-set.zip`: the filtered inspections as a YOLO-format training set
//! (`data.yaml`, `images/{train,val}`, `labels/{train,val}`), the folder `models/train.py --data`
//! fine-tunes on. Labels are what people decided, not what the model said: the boxes that failed
//! the part, none where the operator overrode to OK, then every supervisor correction in order.

use crate::{
    ApiError, AppState,
    corrections::corrections_of,
    review::{Filters, all_records, query_filters},
    snapshots::jpeg_size,
    supervisors::Supervisor,
};
use axum::{
    body::Body,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use protocol::{
    CorrectionAction, InspectionRecord, OperatorDecision, Reviewed, apply_corrections,
    threshold_for,
};
use std::{collections::BTreeMap, io::Write};

/// One YOLO label: class id, then centre x, centre y, width, height as fractions of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct YoloBox {
    pub(crate) class_id: u32,
    pub(crate) xywh: [f32; 4],
}

/// The labels of one inspection, after the operator's decision and the supervisors' corrections.
pub(crate) fn labels_of(
    record: &InspectionRecord,
    corrections: &[CorrectionAction],
    (width, height): (u32, u32),
) -> Vec<YoloBox> {
    let overridden_ok = matches!(record.decision, OperatorDecision::OverriddenOk { .. });
    let corrected = apply_corrections(record.detections.len(), corrections);
    let kept = record
        .detections
        .iter()
        .zip(&corrected.detections)
        .filter_map(|(d, reviewed)| match reviewed {
            Reviewed::Unreviewed => {
                let fails = d.score
                    >= threshold_for(&record.thresholds, record.default_threshold, d.class_id);
                (fails && !overridden_ok).then_some((d.class_id, d.bbox))
            }
            Reviewed::Confirmed => Some((d.class_id, d.bbox)),
            Reviewed::Relabelled { class_id, .. } => Some((*class_id, d.bbox)),
            Reviewed::Deleted => None,
        });
    let missed = corrected.added.into_iter().map(|a| (a.class_id, a.bbox));
    let (w, h) = (width as f32, height as f32);
    kept.chain(missed)
        .map(|(class_id, b)| {
            let (x1, y1) = (b.x1.clamp(0.0, w), b.y1.clamp(0.0, h));
            let (x2, y2) = (b.x2.clamp(0.0, w), b.y2.clamp(0.0, h));
            YoloBox {
                class_id,
                xywh: [
                    (x1 + x2) / 2.0 / w,
                    (y1 + y2) / 2.0 / h,
                    (x2 - x1) / w,
                    (y2 - y1) / h,
                ],
            }
        })
        .filter(|b| b.xywh[2] > 0.0 && b.xywh[3] > 0.0)
        .collect()
}

/// About one inspection in ten goes to validation, always the same ones.
fn split_of(record: &InspectionRecord) -> &'static str {
    if record.id.as_bytes()[15].is_multiple_of(10) {
        "val"
    } else {
        "train"
    }
}

fn data_yaml(names: &BTreeMap<u32, String>) -> String {
    let count = names.keys().next_back().map_or(0, |last| last + 1);
    let mut yaml = format!("path: .\ntrain: images/train\nval: images/val\nnc: {count}\nnames:\n");
    for id in 0..count {
        let name = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("class{id}"));
        yaml.push_str(&format!("  {id}: {name}\n"));
    }
    yaml
}

/// `GET /api/v1/training-set.zip`: built in a temporary file (images are large), then streamed.
pub(crate) async fn training_set(
    State(state): State<AppState>,
    _supervisor: Supervisor,
    query: Result<Query<Filters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let filters = query_filters(query)?;
    let records = all_records(&state, &filters).await?;
    let file = tempfile::tempfile().map_err(|e| ApiError::internal(format!("temp file: {e}")))?;
    let mut zip = zip::ZipWriter::new(file);
    // JPEGs do not compress; the text files are tiny.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let zipped = |e: zip::result::ZipError| ApiError::internal(format!("writing the zip: {e}"));
    let written = |e: std::io::Error| ApiError::internal(format!("writing the zip: {e}"));
    let mut names = BTreeMap::new();
    for record in &records {
        let Some(snapshot) = &record.snapshot else {
            continue;
        };
        let Some(jpeg) = state
            .snapshots
            .get(&snapshot.sha256)
            .await
            .map_err(|e| ApiError::internal(format!("snapshot {}: {e}", snapshot.sha256)))?
        else {
            continue;
        };
        let Some((width, height)) = jpeg_size(&jpeg) else {
            continue;
        };
        let corrections: Vec<CorrectionAction> = corrections_of(&state, record.id)
            .await?
            .into_iter()
            .map(|c| c.action)
            .collect();
        for d in &record.detections {
            names.entry(d.class_id).or_insert_with(|| d.label.clone());
        }
        for c in &corrections {
            if let CorrectionAction::Relabel {
                class_id, label, ..
            }
            | CorrectionAction::MissedDefect {
                class_id, label, ..
            } = c
            {
                names.entry(*class_id).or_insert_with(|| label.clone());
            }
        }
        let labels = labels_of(record, &corrections, (u32::from(width), u32::from(height)));
        let split = split_of(record);
        zip.start_file(format!("images/{split}/{}.jpg", record.id), options)
            .map_err(zipped)?;
        zip.write_all(&jpeg).map_err(written)?;
        zip.start_file(format!("labels/{split}/{}.txt", record.id), options)
            .map_err(zipped)?;
        for b in labels {
            let [x, y, w, h] = b.xywh;
            writeln!(zip, "{} {x:.6} {y:.6} {w:.6} {h:.6}", b.class_id).map_err(written)?;
        }
    }
    zip.start_file("data.yaml", options).map_err(zipped)?;
    zip.write_all(data_yaml(&names).as_bytes())
        .map_err(written)?;
    let mut file = zip.finish().map_err(zipped)?;
    std::io::Seek::rewind(&mut file).map_err(written)?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"linecheck-training-set.zip\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{BoundingBox, ClassThreshold, Detection};

    fn record(decision: OperatorDecision) -> InspectionRecord {
        let detection = |class_id, score, x1| Detection {
            class_id,
            label: format!("c{class_id}"),
            score,
            bbox: BoundingBox {
                x1,
                y1: 10.0,
                x2: x1 + 20.0,
                y2: 50.0,
            },
        };
        let mut r: InspectionRecord = serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "device_id": "00000000-0000-0000-0000-000000000002",
            "sequence": 1, "inspected_at": "2026-11-24T08:00:00Z",
            "local_time": "2026-11-24T09:00:00+01:00", "station": "S", "line": "L",
            "operator": "O", "part_serial": "", "lot": "",
            "model": { "id": "m", "version": "1" }, "default_threshold": 0.5,
            "thresholds": [], "detections": [], "verdict": "fail",
            "decision": { "kind": "confirmed" }, "snapshot": null
        }))
        .unwrap();
        r.detections = vec![
            detection(0, 0.9, 0.0),
            detection(1, 0.3, 40.0),
            detection(2, 0.7, 80.0),
        ];
        r.thresholds = vec![ClassThreshold {
            class_id: 2,
            threshold: 0.8,
        }];
        r.decision = decision;
        r
    }

    #[test]
    fn labels_are_the_failing_boxes_then_the_corrections_in_order() {
        let r = record(OperatorDecision::Confirmed);
        // Only detection 0 reaches its threshold (class 2's is 0.8).
        let boxes = labels_of(&r, &[], (100, 100));
        assert_eq!(
            boxes,
            vec![YoloBox {
                class_id: 0,
                xywh: [0.1, 0.3, 0.2, 0.4]
            }]
        );

        let corrections = [
            CorrectionAction::Confirm { detection: 1 },
            CorrectionAction::Relabel {
                detection: 0,
                class_id: 4,
                label: "pore".into(),
            },
            CorrectionAction::Delete { detection: 1 },
            CorrectionAction::MissedDefect {
                class_id: 3,
                label: "stain".into(),
                bbox: BoundingBox {
                    x1: 50.0,
                    y1: 50.0,
                    x2: 150.0,
                    y2: 70.0,
                },
            },
        ];
        let boxes = labels_of(&r, &corrections, (100, 100));
        assert_eq!(boxes.len(), 2, "{boxes:?}");
        assert_eq!(boxes[0].class_id, 4, "relabelled");
        // The missed defect is clipped to the image.
        assert_eq!(
            boxes[1],
            YoloBox {
                class_id: 3,
                xywh: [0.75, 0.6, 0.5, 0.2]
            }
        );
    }

    #[test]
    fn an_override_to_ok_makes_a_negative_example_unless_a_supervisor_confirms() {
        let reason = "false alarm".to_string();
        let r = record(OperatorDecision::OverriddenOk { reason });
        assert!(labels_of(&r, &[], (100, 100)).is_empty());
        let confirmed = labels_of(
            &r,
            &[CorrectionAction::Confirm { detection: 2 }],
            (100, 100),
        );
        assert_eq!(confirmed.len(), 1);
        assert_eq!(confirmed[0].class_id, 2);
    }

    #[test]
    fn data_yaml_names_every_class_id_up_to_the_largest() {
        let names = BTreeMap::from([(0, "scratch".to_string()), (2, "crack".to_string())]);
        assert_eq!(
            data_yaml(&names),
            "path: .\ntrain: images/train\nval: images/val\nnc: 3\nnames:\n  0: scratch\n  1: class1\n  2: crack\n"
        );
    }
}
