//! One conformance suite that every backend must pass. Expected values are computed here in f64
//! from the definitions, independently of any backend, on seeded random data (never zeros).
//! The GPU suite fails, rather than skips, when no adapter is found: CI installs lavapipe.

use rand::{Rng, SeedableRng, rngs::StdRng};
use vision_engine::{Activation, Backend, CpuBackend, GpuBackend};

fn random_data(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-8.0..8.0)).collect()
}

fn reference(kind: Activation, x: f64) -> f64 {
    let sigmoid = 1.0 / (1.0 + (-x).exp());
    match kind {
        Activation::Sigmoid => sigmoid,
        Activation::Silu => x * sigmoid,
    }
}

/// ‖out − ref‖ / ‖ref‖.
fn relative_l2_error(out: &[f32], expected: &[f64]) -> f64 {
    let diff: f64 = out
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (f64::from(o) - e).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|e| e * e).sum();
    (diff / norm).sqrt()
}

/// Lengths around workgroup boundaries, plus one past 65,535 workgroups so the grid spills into y.
const LENGTHS: [usize; 5] = [1, 255, 257, 100_003, 65_535 * 256 + 1_000];

async fn check_activations(backend: &impl Backend) {
    for kind in Activation::ALL {
        for (seed, len) in LENGTHS.into_iter().enumerate() {
            let input = random_data(seed as u64, len);
            let expected: Vec<f64> = input.iter().map(|&x| reference(kind, x.into())).collect();
            let out = backend.activation(kind, &input).await.unwrap();
            assert_eq!(out.len(), len);
            let err = relative_l2_error(&out, &expected);
            assert!(
                err <= 1e-6,
                "{} {kind:?} len {len}: relative error {err:e}",
                backend.name()
            );
            for (i, (&o, &e)) in out.iter().zip(&expected).enumerate() {
                let tolerance = 1e-6 + 1e-5 * e.abs();
                assert!(
                    (f64::from(o) - e).abs() <= tolerance,
                    "{} {kind:?} len {len}: element {i} of input {} is {o}, expected {e}",
                    backend.name(),
                    input[i]
                );
            }
        }
    }
}

async fn check_empty_input(backend: &impl Backend) {
    let out = backend.activation(Activation::Silu, &[]).await.unwrap();
    assert!(out.is_empty());
}

macro_rules! conformance_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn activations_match_the_reference_on_random_data() {
                pollster::block_on(async { check_activations(&$backend).await });
            }

            #[test]
            fn empty_input_gives_empty_output() {
                pollster::block_on(async { check_empty_input(&$backend).await });
            }
        }
    };
}

conformance_suite!(cpu, CpuBackend);
conformance_suite!(
    gpu,
    GpuBackend::new()
        .await
        .expect("the GPU suite needs an adapter (CI uses lavapipe from mesa-vulkan-drivers)")
);
