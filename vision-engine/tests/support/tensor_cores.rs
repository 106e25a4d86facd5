//! The GPU backend on matrix units, for the tests of the tensor-core convolution
//! (`conformance.rs`, `whole_model.rs`; each includes this file by path).

use vision_engine::{ConvKernels, GpuBackend, Precision};

/// A GPU backend with tensors in `precision` and its convolutions on matrix units, or `None`,
/// saying so, on an adapter without matrix units wgpu can use (lavapipe, so CI). With
/// `LINECHECK_REQUIRE_TENSOR_CORES` set, as on the GPU machine (BENCHMARKS.md), their absence
/// fails the test instead.
pub async fn gpu_on_tensor_cores(precision: Precision) -> Option<GpuBackend> {
    let gpu = GpuBackend::with_precision(precision)
        .await
        .expect("the GPU suite needs an adapter (CI uses lavapipe from mesa-vulkan-drivers)");
    if !gpu.context().tensor_cores() {
        let adapter = gpu.context().adapter();
        assert!(
            std::env::var_os("LINECHECK_REQUIRE_TENSOR_CORES").is_none(),
            "{adapter} has no matrix units wgpu can use"
        );
        eprintln!("skipped: {adapter} has no matrix units wgpu can use");
        return None;
    }
    gpu.set_conv_kernels(ConvKernels::TensorCores);
    Some(gpu)
}
