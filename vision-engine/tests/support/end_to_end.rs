//! The miniature detector with YOLO26's end-to-end (NMS-free) head, from
//! `fixtures/make_end_to_end_fixture.py`, and the parity check against the ONNX Runtime outputs
//! stored beside it (same inputs as the plain miniature), for `whole_model.rs` and `browser.rs`.

use super::{INPUTS, relative_error};
use vision_engine::{
    Tensor,
    end_to_end::decode_end_to_end,
    graph::{Executor, Network},
    npy, onnx,
    postprocess::{NmsOptions, RawDetection},
};

pub const MODEL: &[u8] = include_bytes!("../fixtures/detector/mini_end_to_end.onnx");
pub const ORT_OUTPUTS: [&[u8]; 2] = [
    include_bytes!("../fixtures/detector/ort_end_to_end0.npy"),
    include_bytes!("../fixtures/detector/ort_end_to_end1.npy"),
];
pub const K: usize = 20;
/// Between the fixture's lowest and highest scores, so the threshold selects a subset.
const CONFIDENCE: f32 = 0.9;

pub fn network() -> Network {
    Network::from_onnx(&onnx::parse_model(MODEL).unwrap()).unwrap()
}

pub fn column(t: &Tensor, c: usize) -> Vec<f32> {
    t.data().iter().skip(c).step_by(6).copied().collect()
}

fn detections(output: &Tensor) -> Vec<RawDetection> {
    let options = NmsOptions {
        confidence: CONFIDENCE,
        ..NmsOptions::default()
    };
    decode_end_to_end(output.data(), Some(3), options).unwrap()
}

/// Raw output within 1e-4 (relative) of ONNX Runtime's, scores within 1e-3, the same classes in
/// the same order, and the same detections.
pub async fn matches_onnx_runtime(executor: &impl Executor) {
    for (i, (input, expected)) in INPUTS.iter().zip(ORT_OUTPUTS).enumerate() {
        let expected = npy::read(expected).unwrap();
        let out = executor
            .execute(npy::read(input).unwrap())
            .await
            .unwrap()
            .swap_remove(0);
        let name = executor.name();
        assert_eq!(out.shape(), [1, K, 6]);
        let err = relative_error(&out, &expected);
        assert!(err <= 1e-4, "{name} input {i}: relative error {err:e}");
        let worst_score = column(&out, 4)
            .iter()
            .zip(column(&expected, 4))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst_score <= 1e-3,
            "{name} input {i}: score off by {worst_score}"
        );
        assert_eq!(
            column(&out, 5),
            column(&expected, 5),
            "{name} input {i}: classes"
        );

        let (ours, reference) = (detections(&out), detections(&expected));
        assert!(
            !reference.is_empty() && reference.len() < K,
            "the threshold must select a subset: {}",
            reference.len()
        );
        assert_eq!(ours.len(), reference.len(), "{name} input {i}: detections");
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a.class_id, b.class_id);
            assert!((a.score - b.score).abs() <= 1e-3);
            let close = a
                .bbox
                .iter()
                .zip(&b.bbox)
                .all(|(x, y)| (x - y).abs() <= 1e-2);
            assert!(close, "{name}: box {:?} vs {:?}", a.bbox, b.bbox);
        }
    }
}
