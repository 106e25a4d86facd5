//! Opens the WebGPU adapter through vision-engine and checks a real kernel against the CPU
//! backend, so the kiosk knows at start whether it can trust its GPU.

use vision_engine::{Activation, Backend, CpuBackend, GpuBackend, Precision, Tensor};

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

/// Largest difference the check accepts between GPU and CPU results of SiLU on [-8, 8), for a
/// CPU result `expected`: in f16 the GPU also rounds each input and output to 11 significant
/// bits (2^-12 of the value each way).
fn tolerance(precision: Precision, expected: f32) -> f32 {
    match precision {
        Precision::F32 => 1e-4,
        Precision::F16 => 1e-4 + 2e-3 * expected.abs(),
    }
}

/// Opens the GPU in the fastest precision it offers (f16 where it has `shader-f16`) and checks
/// it: the backend when it can be trusted, or why not.
pub async fn check() -> Result<GpuBackend, String> {
    let gpu = GpuBackend::fastest().await.map_err(|e| e.to_string())?;
    let input = test_input(4096);
    let gpu_out = gpu
        .activation(Activation::Silu, &input)
        .await
        .map_err(|e| e.to_string())?;
    let cpu_out = CpuBackend
        .activation(Activation::Silu, &input)
        .await
        .map_err(|e| e.to_string())?;
    let worst = gpu_out
        .data()
        .iter()
        .zip(cpu_out.data())
        .map(|(g, c)| (g - c).abs() / tolerance(gpu.precision(), *c))
        .fold(0.0, f32::max);
    if worst <= 1.0 {
        Ok(gpu)
    } else {
        Err(format!(
            "{} gives wrong results ({worst:.1} times the tolerance)",
            gpu.name()
        ))
    }
}
