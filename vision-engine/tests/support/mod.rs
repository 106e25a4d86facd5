//! The miniature detector of `fixtures/make_detector_fixture.py` and the parity check against
//! the ONNX Runtime outputs stored beside it, shared by the native test (`whole_model.rs`) and the
//! browser test (`browser.rs`). The fixtures are compiled in: the browser has no file system.

use vision_engine::{
    Tensor,
    graph::{Executor, Network},
    npy, onnx,
    postprocess::{NmsOptions, RawDetection, decode_and_nms},
};

pub const CLASSES: usize = 3;
pub const ANCHORS: usize = 84;

const MODEL: &[u8] = include_bytes!("../fixtures/detector/mini_detector.onnx");
const INPUTS: [&[u8]; 2] = [
    include_bytes!("../fixtures/detector/input0.npy"),
    include_bytes!("../fixtures/detector/input1.npy"),
];
pub const ORT_OUTPUTS: [&[u8]; 2] = [
    include_bytes!("../fixtures/detector/ort_output0.npy"),
    include_bytes!("../fixtures/detector/ort_output1.npy"),
];

pub fn network() -> Network {
    Network::from_onnx(&onnx::parse_model(MODEL).unwrap()).unwrap()
}

pub fn max_class_score_difference(out: &Tensor, expected: &Tensor) -> f32 {
    out.data()[4 * ANCHORS..]
        .iter()
        .zip(&expected.data()[4 * ANCHORS..])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

pub fn relative_error(out: &Tensor, expected: &Tensor) -> f64 {
    let diff: f64 = out
        .data()
        .iter()
        .zip(expected.data())
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = expected.data().iter().map(|&b| f64::from(b).powi(2)).sum();
    (diff / norm).sqrt()
}

fn detections(output: &Tensor) -> Vec<RawDetection> {
    let options = NmsOptions {
        confidence: 0.5,
        ..NmsOptions::default()
    };
    decode_and_nms(output.data(), CLASSES, ANCHORS, options).unwrap()
}

/// The raw output within 1e-4 (relative) and 1e-3 (any class score) of ONNX Runtime's, and the
/// same detections after decoding and NMS. `executor` runs the network of [`network`].
pub async fn matches_onnx_runtime(executor: &impl Executor) {
    for (i, (input, expected)) in INPUTS.iter().zip(ORT_OUTPUTS).enumerate() {
        let expected = npy::read(expected).unwrap();
        let outputs = executor.execute(npy::read(input).unwrap()).await.unwrap();
        let out = &outputs[0];
        assert_eq!(out.shape(), expected.shape());
        let err = relative_error(out, &expected);
        assert!(
            err <= 1e-4,
            "{} input {i}: relative error {err:e}",
            executor.name()
        );
        let score_diff = max_class_score_difference(out, &expected);
        assert!(
            score_diff <= 1e-3,
            "{} input {i}: class score off by {score_diff}",
            executor.name()
        );

        let (ours, reference) = (detections(out), detections(&expected));
        assert!(
            !reference.is_empty() && reference.len() < ANCHORS,
            "the threshold must select a subset: {}",
            reference.len()
        );
        assert_eq!(
            ours.len(),
            reference.len(),
            "{} input {i}: detections",
            executor.name()
        );
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a.class_id, b.class_id);
            assert!((a.score - b.score).abs() <= 1e-3);
            for (x, y) in a.bbox.iter().zip(&b.bbox) {
                assert!(
                    (x - y).abs() <= 1e-2,
                    "{} box {:?} vs {:?}",
                    executor.name(),
                    a.bbox,
                    b.bbox
                );
            }
        }
    }
}
