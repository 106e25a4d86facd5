//! Whole models against ONNX Runtime. `fixtures/make_detector_fixture.py` builds a miniature
//! detector with the op structure of Ultralytics detect exports and stores ONNX Runtime's outputs
//! for two inputs; every backend must reproduce them, raw and after decoding and NMS. The same
//! check runs in the browser (`browser.rs`); real Ultralytics models are checked on the GPU
//! machine (`tools/ultralytics_parity.py`, results in PARITY.md).

mod support;

use support::{
    ANCHORS, CLASSES, ORT_OUTPUTS, Tolerance, max_class_score_difference, network, relative_error,
};
use vision_engine::{
    CpuBackend, GpuBackend, Precision,
    graph::OpByOp,
    letterbox::{self, Letterbox},
    npy,
};

#[test]
fn loading_folds_the_shape_subgraph_and_fuses_silu_into_convolutions() {
    let network = network();
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
    // Every Conv -> Sigmoid -> Mul of the model became one fused step: 25 conv blocks with SiLU,
    // 4 plain convs (three head outputs and the DFL). The only activation left is the class-score
    // sigmoid, and no Shape/Gather/Concat of the DFL reshape survives.
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

#[test]
fn the_reference_outputs_depend_on_the_input() {
    let [a, b] = ORT_OUTPUTS.map(|bytes| npy::read(bytes).unwrap());
    assert!(
        relative_error(&a, &b) > 1e-3,
        "a model blind to its input would make the parity test meaningless"
    );
    assert!(max_class_score_difference(&a, &b) > 1e-2);
}

#[test]
fn cpu_backend_matches_onnx_runtime() {
    let network = network();
    let executor = OpByOp {
        network: &network,
        backend: &CpuBackend,
    };
    pollster::block_on(support::matches_onnx_runtime(
        &executor,
        &Tolerance::of(Precision::F32),
    ));
}

const NEEDS_ADAPTER: &str = "the GPU suite needs an adapter (CI uses lavapipe from \
    mesa-vulkan-drivers, which has shader-f16)";

/// In f32 within 1e-4 of ONNX Runtime; in f16 (lavapipe has shader-f16) the same detections,
/// boxes within a quarter of an input pixel (`Tolerance::of`).
#[test]
fn gpu_backend_matches_onnx_runtime_op_by_op_and_resident_in_both_precisions() {
    pollster::block_on(async {
        let network = network();
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            let tolerance = Tolerance::of(precision);
            let op_by_op = OpByOp {
                network: &network,
                backend: &gpu,
            };
            support::matches_onnx_runtime(&op_by_op, &tolerance).await;
            let prepared = gpu.prepare(&network).unwrap();
            support::matches_onnx_runtime(&prepared, &tolerance).await;
            // Inference after inference reuses the same buffers: run the check a second time.
            support::matches_onnx_runtime(&prepared, &tolerance).await;
            println!(
                "GPU activations in {}: {} bytes planned; the largest step reads and writes {} bytes",
                precision.name(),
                prepared.activation_bytes(),
                prepared.largest_step_bytes()
            );
        }
    });
}

#[test]
fn gpu_letterbox_matches_the_cpu_reference_in_both_precisions() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            // f16 stores values in [0.5, 1] within 2^-12 of themselves.
            let tolerance = match precision {
                Precision::F32 => 1e-5,
                Precision::F16 => 3e-4,
            };
            // Downscaled wide, upscaled small, exactly the resized size, tall and odd.
            for (i, (w, h)) in [(1280, 720), (40, 30), (64, 48), (37, 91), (64, 64)]
                .into_iter()
                .enumerate()
            {
                let rgba = support::test_image(w, h, i as u32 + 1);
                let lb = Letterbox::new(w, h, 64, 64);
                let expected = letterbox::to_input(&rgba, &lb);
                let out = gpu.letterbox(&rgba, &lb).await.unwrap();
                assert_eq!(out.shape(), expected.shape());
                let worst = out
                    .data()
                    .iter()
                    .zip(expected.data())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    worst <= tolerance,
                    "{w}x{h} in {}: letterbox differs by {worst}",
                    precision.name()
                );
            }
        }
    });
}

#[test]
fn the_detector_on_the_gpu_finds_what_it_finds_on_the_cpu_in_both_precisions() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            support::gpu_detector_agrees_with_cpu(&gpu).await;
        }
    });
}
