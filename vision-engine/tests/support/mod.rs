//! The miniature detector of `fixtures/make_detector_fixture.py` and the parity check against
//! the ONNX Runtime outputs stored beside it, shared by the native test (`whole_model.rs`) and the
//! browser test (`browser.rs`). The fixtures are compiled in: the browser has no file system.

pub mod end_to_end;

use vision_engine::{
    Backend, CpuBackend, DetectionResult, Detector, GpuBackend, Precision, Tensor,
    graph::{Executor, Network, OpByOp},
    npy, onnx,
    postprocess::{NmsOptions, OutputLayout, RawDetection, decode_and_nms},
};

pub const CLASSES: usize = 3;
pub const ANCHORS: usize = 84;
const LAYOUT: OutputLayout = OutputLayout::Anchors {
    classes: CLASSES,
    anchors: ANCHORS,
};

const MODEL: &[u8] = include_bytes!("../fixtures/detector/mini_detector.onnx");
pub const INPUTS: [&[u8]; 2] = [
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

/// How close a run must come to the reference, by the precision of the tensors it ran in.
pub struct Tolerance {
    /// ‖out − ref‖ / ‖ref‖ of the raw output.
    pub relative: f64,
    /// Largest difference of any class score, and of the score of a detection.
    pub score: f32,
    /// Largest difference of a detection's box coordinate, in input pixels (the model's input
    /// is 64x64).
    pub box_px: f32,
    /// Least intersection over union of the detector's boxes on an image with the CPU's. That
    /// model's detections all cover most of the image, and two anchors of one class score within
    /// a few 1e-4 of each other: in f16 (scores resolved to 2^-11 near 0.5) the other anchor of
    /// such a pair can win NMS, its box a few pixels off.
    pub min_iou: f32,
}

impl Tolerance {
    pub fn of(precision: Precision) -> Self {
        match precision {
            Precision::F32 => Tolerance {
                relative: 1e-4,
                score: 1e-3,
                box_px: 1e-2,
                min_iou: 0.999,
            },
            // f16 keeps 11 significant bits: every stored activation is off by up to 2^-12 of
            // itself, and ~30 layers compound it. Measured on lavapipe: 3.1e-4 relative, class
            // scores within 2.7e-4, boxes within 0.12 px (f16's spacing is 1/32 px from 32 to 64).
            Precision::F16 => Tolerance {
                relative: 2e-3,
                score: 2e-3,
                box_px: 0.25,
                min_iou: 0.9,
            },
        }
    }
}

fn detection_options() -> NmsOptions {
    NmsOptions {
        confidence: 0.5,
        ..NmsOptions::default()
    }
}

fn detections(output: &Tensor) -> Vec<RawDetection> {
    decode_and_nms(output.data(), LAYOUT, detection_options()).unwrap()
}

/// The raw output within `tolerance` of ONNX Runtime's (relative, and any class score), and the
/// same detections after decoding and NMS, boxes within `tolerance`. `executor` runs the network
/// of [`network`].
pub async fn matches_onnx_runtime(executor: &impl Executor, tolerance: &Tolerance) {
    for (i, (input, expected)) in INPUTS.iter().zip(ORT_OUTPUTS).enumerate() {
        let expected = npy::read(expected).unwrap();
        let outputs = executor.execute(npy::read(input).unwrap()).await.unwrap();
        let out = &outputs[0];
        assert_eq!(out.shape(), expected.shape());
        let err = relative_error(out, &expected);
        assert!(
            err <= tolerance.relative,
            "{} input {i}: relative error {err:e}",
            executor.name()
        );
        let score_diff = max_class_score_difference(out, &expected);
        assert!(
            score_diff <= tolerance.score,
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
        // Overlapping anchors of one class score within 1e-5 of each other here, so within the
        // tolerance either may win NMS: each detection must be one of the reference's
        // candidates, its class, score and box within the tolerance.
        let candidates = decode_and_nms(
            expected.data(),
            LAYOUT,
            NmsOptions {
                iou: 1.0,
                ..detection_options()
            },
        )
        .unwrap();
        for a in &ours {
            let matched = candidates.iter().any(|b| {
                a.class_id == b.class_id
                    && (a.score - b.score).abs() <= tolerance.score
                    && a.bbox
                        .iter()
                        .zip(&b.bbox)
                        .all(|(x, y)| (x - y).abs() <= tolerance.box_px)
            });
            assert!(
                matched,
                "{} input {i}: {a:?} is none of the reference's candidates",
                executor.name()
            );
        }
    }
}

/// Seeded RGBA noise with smooth gradients, so bilinear sampling has something to get wrong.
pub fn test_image(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..width * height * 4)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let (x, y) = ((i / 4) % width, (i / 4) / width);
            ((x * 3 + y * 5 + (i % 4) * 40) as u8).wrapping_add((state % 32) as u8)
        })
        .collect()
}

/// The detector, prepared on `gpu` (letterboxing, decoding and NMS there too), against the CPU
/// path within the tolerance of the GPU's precision; and the GPU's decoding and NMS exactly equal
/// to the CPU reference's on the GPU's own raw output. Frames of several sizes in turn, on the
/// one prepared network: it keeps its pixel buffer and letterbox between frames, grows the
/// buffer for a larger frame and letterboxes a smaller one from the larger buffer.
pub async fn gpu_detector_agrees_with_cpu(gpu: &GpuBackend) {
    let tolerance = Tolerance::of(gpu.precision());
    let detector = Detector::from_onnx_bytes(MODEL).unwrap();
    let prepared = gpu.prepare(detector.network()).unwrap();
    let cpu = OpByOp {
        network: detector.network(),
        backend: &CpuBackend,
    };
    let options = NmsOptions {
        confidence: 0.5,
        ..NmsOptions::default()
    };
    for (i, (w, h, seed)) in [(96, 72, 7), (160, 120, 8), (40, 30, 9), (96, 72, 7)]
        .into_iter()
        .enumerate()
    {
        let rgba = test_image(w, h, seed);
        let [(on_gpu, gpu_raw), (on_cpu, cpu_raw)] =
            detect_on_both(&detector, (&prepared, &cpu), &rgba, (w, h), options).await;
        let err = relative_error(&gpu_raw, &cpu_raw);
        assert!(
            err <= tolerance.relative,
            "frame {i} ({w}x{h}), raw output: relative error {err:e}"
        );

        let reference: Vec<_> = decode_and_nms(gpu_raw.data(), LAYOUT, options)
            .unwrap()
            .into_iter()
            .map(|d| (d.class_id, d.score, on_gpu.letterbox.to_source(d.bbox)))
            .collect();
        let boxes_only = detector
            .detect(&prepared, &rgba, w, h, options)
            .await
            .unwrap();
        for found in [&on_gpu.detections, &boxes_only.detections] {
            let found: Vec<_> = found
                .iter()
                .map(|d| (d.class_id, d.score, d.bbox))
                .collect();
            assert_eq!(
                found, reference,
                "frame {i}: GPU NMS against the CPU reference"
            );
        }
        if i == 0 {
            assert!(!on_cpu.detections.is_empty());
        }
        assert_eq!(on_gpu.detections.len(), on_cpu.detections.len());
        for (a, b) in on_gpu.detections.iter().zip(&on_cpu.detections) {
            assert_eq!(a.class_id, b.class_id);
            assert!((a.score - b.score).abs() <= tolerance.score);
            let overlap = iou(&a.bbox, &b.bbox);
            assert!(
                overlap >= tolerance.min_iou,
                "{}, frame {i}: {:?} vs {:?}, IoU {overlap}",
                gpu.name(),
                a.bbox,
                b.bbox
            );
        }
    }
}

/// `detector`'s detections and raw output for one `width` x `height` RGBA frame on each
/// executor.
pub async fn detect_on_both(
    detector: &Detector,
    (a, b): (&impl Executor, &impl Executor),
    rgba: &[u8],
    (width, height): (u32, u32),
    options: NmsOptions,
) -> [(DetectionResult, Tensor); 2] {
    let on_a = detector.detect_with_raw_output(a, rgba, width, height, options);
    let on_a = on_a.await.unwrap();
    let on_b = detector.detect_with_raw_output(b, rgba, width, height, options);
    [on_a, on_b.await.unwrap()]
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ];
    area(&inter) / (area(a) + area(b) - area(&inter))
}
