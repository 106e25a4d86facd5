//! Opens the WebGPU adapter through vision-engine and checks a real kernel against the CPU
//! backend, so the kiosk knows at start whether it can trust its GPU.

use vision_engine::{Activation, Backend, CpuBackend, GpuBackend, Tensor};

/// Deterministic inputs in [-8, 8): the check must give the same verdict on every start.
fn test_input(len: usize) -> Tensor {
    let mut state: u32 = 0x9e37_79b9;
    let data = (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 16.0 - 8.0
        })
        .collect();
    Tensor::new(vec![len], data).expect("the shape holds len values")
}

/// Largest difference the check accepts between GPU and CPU results of SiLU on [-8, 8).
const TOLERANCE: f32 = 1e-4;

/// Opens the GPU and checks it: the backend when it can be trusted, or why not.
pub async fn check() -> Result<GpuBackend, String> {
    let gpu = GpuBackend::new().await.map_err(|e| e.to_string())?;
    let input = test_input(4096);
    let gpu_out = gpu
        .activation(Activation::Silu, &input)
        .await
        .map_err(|e| e.to_string())?;
    let cpu_out = CpuBackend
        .activation(Activation::Silu, &input)
        .await
        .map_err(|e| e.to_string())?;
    let max_abs_error = gpu_out
        .data()
        .iter()
        .zip(cpu_out.data())
        .map(|(g, c)| (g - c).abs())
        .fold(0.0, f32::max);
    if max_abs_error <= TOLERANCE {
        Ok(gpu)
    } else {
        Err(format!(
            "{} gives wrong results (error {max_abs_error:e})",
            gpu.name()
        ))
    }
}
