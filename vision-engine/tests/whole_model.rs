//! Whole models against ONNX Runtime. `fixtures/make_detector_fixture.py` builds a miniature
//! detector with the op structure of Ultralytics detect exports and stores ONNX Runtime's outputs
//! for two inputs; every backend must reproduce them, raw and after decoding and NMS.

use std::path::PathBuf;
use vision_engine::{
    Backend, CpuBackend, GpuBackend, Tensor,
    graph::Network,
    npy, onnx,
    postprocess::{NmsOptions, RawDetection, decode_and_nms},
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/detector")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load() -> Network {
    let model = onnx::parse_model(&fixture("mini_detector.onnx")).unwrap();
    Network::from_onnx(&model).unwrap()
}

const CLASSES: usize = 3;
const ANCHORS: usize = 84;

#[test]
fn loading_folds_the_shape_subgraph_and_fuses_silu_into_convolutions() {
    let network = load();
    assert_eq!(network.input_shape, [1, 3, 64, 64]);
    assert_eq!(
        network.outputs,
        [("output0".to_string(), vec![1, 4 + CLASSES, ANCHORS])]
    );
    assert_eq!(
        network.class_names.as_deref(),
        Some(&["scratch".to_string(), "dent".into(), "crack".into()][..])
    );
    let counts = network.op_counts();
    // Every Conv -> Sigmoid -> Mul of the model became one fused step; the only activation left
    // is the class-score sigmoid, and no Shape/Gather/Concat of the DFL reshape survives.
    // 25 conv blocks with SiLU; 4 plain convs (three head outputs and the DFL).
    assert_eq!(counts.get("Conv+Activation"), Some(&25), "{counts:?}");
    assert_eq!(counts.get("Conv"), Some(&4), "{counts:?}");
    assert_eq!(counts.get("Activation"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("Gather"),
        Some(&1),
        "only the Gather on image data runs: {counts:?}"
    );
    assert!(!counts.contains_key("Shape"));
}

fn max_class_score_difference(out: &Tensor, expected: &Tensor) -> f32 {
    out.data()[4 * ANCHORS..]
        .iter()
        .zip(&expected.data()[4 * ANCHORS..])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn relative_error(out: &Tensor, expected: &Tensor) -> f64 {
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

#[test]
fn the_reference_outputs_depend_on_the_input() {
    let (a, b) = (
        npy::read(&fixture("ort_output0.npy")).unwrap(),
        npy::read(&fixture("ort_output1.npy")).unwrap(),
    );
    assert!(
        relative_error(&a, &b) > 1e-3,
        "a model blind to its input would make the parity test meaningless"
    );
    assert!(max_class_score_difference(&a, &b) > 1e-2);
}

async fn matches_onnx_runtime(backend: &impl Backend) {
    let network = load();
    for i in 0..2 {
        let input = npy::read(&fixture(&format!("input{i}.npy"))).unwrap();
        let expected = npy::read(&fixture(&format!("ort_output{i}.npy"))).unwrap();
        let outputs = network.run(backend, input).await.unwrap();
        let out = &outputs[0];
        assert_eq!(out.shape(), expected.shape());
        let err = relative_error(out, &expected);
        assert!(
            err <= 1e-4,
            "{} input {i}: relative error {err:e}",
            backend.name()
        );
        let score_diff = max_class_score_difference(out, &expected);
        assert!(
            score_diff <= 1e-3,
            "{} input {i}: class score off by {score_diff}",
            backend.name()
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
            backend.name()
        );
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a.class_id, b.class_id);
            assert!((a.score - b.score).abs() <= 1e-3);
            for (x, y) in a.bbox.iter().zip(&b.bbox) {
                assert!(
                    (x - y).abs() <= 1e-2,
                    "{} box {:?} vs {:?}",
                    backend.name(),
                    a.bbox,
                    b.bbox
                );
            }
        }
    }
}

#[test]
fn cpu_backend_matches_onnx_runtime() {
    pollster::block_on(matches_onnx_runtime(&CpuBackend));
}

#[test]
fn gpu_backend_matches_onnx_runtime() {
    pollster::block_on(async {
        let gpu = GpuBackend::new()
            .await
            .expect("the GPU suite needs an adapter (CI uses lavapipe from mesa-vulkan-drivers)");
        matches_onnx_runtime(&gpu).await
    });
}
