//! The engine compiled to wasm32 in headless Chromium: the whole miniature detector on WebGPU
//! (SwiftShader where there is no GPU) and on the CPU backend, against the same ONNX Runtime
//! outputs the native tests use. Run by `cargo xtask test` through wasm-bindgen-test-runner;
//! `webdriver.json` beside Cargo.toml holds the Chromium flags.
#![cfg(target_arch = "wasm32")]

mod support;

use vision_engine::{CpuBackend, GpuBackend, Precision, graph::OpByOp};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_backend_matches_onnx_runtime_op_by_op_and_resident() {
    let gpu = GpuBackend::new()
        .await
        .expect("Chromium must expose a WebGPU adapter (--enable-unsafe-webgpu)");
    let tolerance = support::Tolerance::of(gpu.precision());
    let network = support::network();
    support::matches_onnx_runtime(
        &OpByOp {
            network: &network,
            backend: &gpu,
        },
        &tolerance,
    )
    .await;
    support::matches_onnx_runtime(&gpu.prepare(&network).unwrap(), &tolerance).await;
}

/// SwiftShader has no shader-f16: asked for f16 exactly, the backend says so.
#[wasm_bindgen_test]
async fn f16_on_an_adapter_without_shader_f16_is_a_clear_error() {
    let Err(err) = GpuBackend::with_precision(Precision::F16).await else {
        panic!("SwiftShader has no shader-f16, yet an f16 device opened");
    };
    assert!(err.to_string().contains("shader-f16"), "{err}");
}

#[wasm_bindgen_test]
async fn cpu_backend_matches_onnx_runtime() {
    let network = support::network();
    support::matches_onnx_runtime(
        &OpByOp {
            network: &network,
            backend: &CpuBackend,
        },
        &support::Tolerance::of(Precision::F32),
    )
    .await;
}

#[wasm_bindgen_test]
async fn the_detector_on_webgpu_letterboxes_and_finds_what_the_cpu_finds() {
    let gpu = GpuBackend::new()
        .await
        .expect("Chromium must expose a WebGPU adapter (--enable-unsafe-webgpu)");
    support::gpu_detector_agrees_with_cpu(&gpu).await;
}

#[wasm_bindgen_test]
async fn the_end_to_end_head_on_webgpu_and_the_cpu_matches_onnx_runtime() {
    let gpu = GpuBackend::new()
        .await
        .expect("Chromium must expose a WebGPU adapter (--enable-unsafe-webgpu)");
    let network = support::end_to_end::network();
    support::end_to_end::matches_onnx_runtime(&gpu.prepare(&network).unwrap()).await;
    support::end_to_end::matches_onnx_runtime(&OpByOp {
        network: &network,
        backend: &CpuBackend,
    })
    .await;
}
