//! Decoding and NMS on the GPU (`decode_boxes.wgsl`, `nms.wgsl`) against the CPU reference
//! (`postprocess::decode_and_nms`) on seeded random detector outputs: the same boxes, in the same
//! order, with the same classes and bit-equal scores and corners. The outputs are built to be
//! hard: boxes crowded into a small area (most overlap), scores on a few levels (ties between
//! anchors and between the classes of one anchor), more candidates than `max_candidates`.
//!
//! The GPU suite fails, rather than skips, when no adapter is found: CI installs lavapipe.

use rand::{Rng, SeedableRng, rngs::StdRng};
use vision_engine::{
    GpuBackend, Tensor,
    postprocess::{NmsOptions, OutputLayout, RawDetection, decode_and_nms},
};

/// A `[1, 4 + classes, anchors]` output: centres within `spread` pixels, sides 2-40 pixels;
/// scores drawn from `levels` evenly spaced values in (0, 1) (continuous where `levels` is 0).
fn random_output(seed: u64, classes: usize, anchors: usize, spread: f32, levels: u32) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0.0f32; (4 + classes) * anchors];
    for a in 0..anchors {
        data[a] = rng.random_range(0.0..spread);
        data[anchors + a] = rng.random_range(0.0..spread);
        data[2 * anchors + a] = rng.random_range(2.0..40.0);
        data[3 * anchors + a] = rng.random_range(2.0..40.0);
        for c in 0..classes {
            data[(4 + c) * anchors + a] = if levels == 0 {
                rng.random_range(0.0..1.0)
            } else {
                rng.random_range(1..=levels) as f32 / (levels + 1) as f32
            };
        }
    }
    Tensor::new(vec![1, 4 + classes, anchors], data).unwrap()
}

fn bits(detections: &[RawDetection]) -> Vec<(u32, u32, [u32; 4])> {
    detections
        .iter()
        .map(|d| (d.class_id, d.score.to_bits(), d.bbox.map(f32::to_bits)))
        .collect()
}

/// Runs both backends and asserts identical detections; returns how many there were.
async fn gpu_equals_cpu(
    gpu: &GpuBackend,
    what: &str,
    output: &Tensor,
    options: NmsOptions,
) -> usize {
    let &[1, rows, anchors] = output.shape() else {
        panic!("{what}: not a detector output")
    };
    let layout = OutputLayout::Anchors {
        classes: rows - 4,
        anchors,
    };
    let expected = decode_and_nms(output.data(), layout, options).unwrap();
    let found = gpu.decode_and_nms(output, layout, options).await.unwrap();
    assert_eq!(
        bits(&found),
        bits(&expected),
        "{what}: GPU {} detections, CPU {}",
        found.len(),
        expected.len()
    );
    expected.len()
}

fn gpu() -> GpuBackend {
    pollster::block_on(GpuBackend::new())
        .expect("the GPU suite needs an adapter (CI uses lavapipe from mesa-vulkan-drivers)")
}

fn options(confidence: f32, iou: f32) -> NmsOptions {
    NmsOptions {
        confidence,
        iou,
        ..NmsOptions::default()
    }
}

#[test]
fn crowded_boxes_of_several_classes_with_tied_scores() {
    let gpu = gpu();
    pollster::block_on(async {
        for (seed, classes, anchors, levels) in [(1, 5, 2100, 6), (2, 3, 1000, 3), (3, 80, 8400, 0)]
        {
            for iou in [0.0, 0.45, 0.7] {
                let output = random_output(seed, classes, anchors, 120.0, levels);
                let what = format!("seed {seed}, {classes} classes, {anchors} anchors, iou {iou}");
                let kept = gpu_equals_cpu(&gpu, &what, &output, options(0.25, iou)).await;
                assert!(kept > 10, "{what}: only {kept} boxes kept");
            }
        }
    });
}

#[test]
fn every_anchor_a_candidate_up_to_max_detections() {
    let gpu = gpu();
    pollster::block_on(async {
        // Spread out, so NMS keeps many: the 300-box limit ends it.
        let output = random_output(4, 4, 8400, 2000.0, 0);
        let kept = gpu_equals_cpu(&gpu, "all anchors", &output, options(0.0, 0.45)).await;
        assert_eq!(kept, 300);
        let few = NmsOptions {
            max_detections: 7,
            ..options(0.0, 0.45)
        };
        assert_eq!(gpu_equals_cpu(&gpu, "7 at most", &output, few).await, 7);
    });
}

#[test]
fn more_candidates_than_max_candidates_keep_the_best_scoring() {
    let gpu = gpu();
    pollster::block_on(async {
        let output = random_output(5, 3, 2100, 300.0, 10);
        for max_candidates in [1, 100, 255, 256, 257, 1000] {
            let capped = NmsOptions {
                max_candidates,
                ..options(0.2, 0.45)
            };
            let what = format!("max_candidates {max_candidates}");
            let kept = gpu_equals_cpu(&gpu, &what, &output, capped).await;
            assert!((1..=max_candidates).contains(&kept), "{what}: {kept}");
        }
    });
}

#[test]
fn nothing_above_the_threshold_gives_no_detections() {
    let gpu = gpu();
    pollster::block_on(async {
        let output = random_output(6, 3, 2100, 120.0, 4);
        // The highest level is 4/5: nothing scores above it.
        assert_eq!(
            gpu_equals_cpu(&gpu, "empty", &output, options(0.8, 0.45)).await,
            0
        );
        let one = random_output(7, 2, 1, 120.0, 0);
        assert_eq!(
            gpu_equals_cpu(&gpu, "one anchor", &one, options(0.0, 0.45)).await,
            1
        );
    });
}

#[test]
fn signed_zero_scores_are_ordered_as_the_cpu_orders_them() {
    let gpu = gpu();
    pollster::block_on(async {
        // Scores of -0.0 and +0.0 pass a negative threshold; `total_cmp` puts +0.0 first.
        let mut output = random_output(8, 2, 600, 2000.0, 0);
        let anchors = 600;
        for a in 0..anchors {
            let zero = if a % 3 == 0 { -0.0 } else { 0.0 };
            output.data_mut()[4 * anchors + a] = zero;
            output.data_mut()[5 * anchors + a] = zero;
        }
        let kept = gpu_equals_cpu(&gpu, "signed zeros", &output, options(-1.0, 0.45)).await;
        assert!(kept > 100);
    });
}

#[test]
fn nan_and_minus_infinity_scores_are_never_the_best_class() {
    let gpu = gpu();
    pollster::block_on(async {
        let anchors = 400;
        let mut output = random_output(10, 3, anchors, 2000.0, 0);
        for a in 0..anchors {
            let odd = [f32::NAN, f32::NEG_INFINITY, -f32::MAX][a % 3];
            // The first class, the first two, or all three hold the odd score.
            for c in 0..=(a / 3) % 3 {
                output.data_mut()[(4 + c) * anchors + a] = odd;
            }
        }
        let kept = gpu_equals_cpu(&gpu, "non-finite", &output, options(-f32::MAX, 0.45)).await;
        assert!(kept > 100);
    });
}

#[test]
fn a_wrongly_sized_output_is_an_error_naming_the_stage() {
    let gpu = gpu();
    let output = random_output(9, 3, 50, 100.0, 0);
    let layout = OutputLayout::Anchors {
        classes: 4,
        anchors: 50,
    };
    let err =
        pollster::block_on(gpu.decode_and_nms(&output, layout, NmsOptions::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Detections: detector output of 350 values does not fit [1, 4 + 4, 50]"
    );
}
