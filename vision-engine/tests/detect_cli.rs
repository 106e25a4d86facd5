//! The `detect` command line tool, run as a user runs it.

mod cli;

use std::{path::PathBuf, process::Command};
use vision_engine::{CpuBackend, Detector, graph::OpByOp, npy, postprocess::NmsOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/detector")
        .join(name)
}

fn detect(args: &[&str]) -> (bool, String, String) {
    detect_on(None, args)
}

/// `detect` with `WGPU_BACKEND` set to `api` (e.g. `gl`), or as the environment has it.
fn detect_on(api: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detect"));
    if let Some(api) = api {
        command.env("WGPU_BACKEND", api);
    }
    cli::run(command.args(args))
}

/// A 96x72 PNG with a gradient, so the network sees a real image of another size than its input.
fn write_image(dir: &std::path::Path) -> PathBuf {
    let image = image::RgbImage::from_fn(96, 72, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let path = dir.join("part.png");
    image.save(&path).unwrap();
    path
}

#[test]
fn prints_one_json_object_per_image_and_writes_the_raw_output() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let raw = dir.path().join("raw");
    for backend in ["cpu", "gpu"] {
        let (ok, stdout, stderr) = detect(&[
            "--model",
            fixture("mini_detector.onnx").to_str().unwrap(),
            "--backend",
            backend,
            "--conf",
            "0.5",
            "--raw-out",
            raw.to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(line["image"], image.display().to_string());
        assert_eq!(
            (line["width"].as_u64(), line["height"].as_u64()),
            (Some(96), Some(72))
        );
        let detections = line["detections"].as_array().unwrap();
        assert!(!detections.is_empty(), "{backend}: {stdout}");
        for d in detections {
            let b: Vec<f64> = d["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!(
                b[0] <= b[2] && b[1] <= b[3] && b[2] <= 96.0 && b[3] <= 72.0,
                "{backend}: box {b:?} in image pixels"
            );
            assert!(["scratch", "dent", "crack"].contains(&d["label"].as_str().unwrap()));
            assert!(d["score"].as_f64().unwrap() > 0.5);
        }
        assert!(line["timings_ms"]["detect"].as_f64().unwrap() > 0.0);

        // Without --raw-out only the boxes are read back: the same detections.
        let (ok, boxes_only, stderr) = detect(&[
            "--model",
            fixture("mini_detector.onnx").to_str().unwrap(),
            "--backend",
            backend,
            "--conf",
            "0.5",
            image.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
        let boxes_only: serde_json::Value = serde_json::from_str(boxes_only.trim()).unwrap();
        assert_eq!(boxes_only["detections"], line["detections"], "{backend}");

        // The raw output is exactly what the engine computes for that image.
        let written = npy::read(&std::fs::read(raw.join("part.npy")).unwrap()).unwrap();
        let detector =
            Detector::from_onnx_bytes(&std::fs::read(fixture("mini_detector.onnx")).unwrap())
                .unwrap();
        let rgba = image::open(&image).unwrap().to_rgba8();
        let executor = OpByOp {
            network: detector.network(),
            backend: &CpuBackend,
        };
        let (_, expected) = pollster::block_on(detector.detect_with_raw_output(
            &executor,
            rgba.as_raw(),
            96,
            72,
            NmsOptions::default(),
        ))
        .unwrap();
        assert_eq!(written.shape(), [1, 7, 84]);
        let max_diff = written
            .data()
            .iter()
            .zip(expected.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            max_diff < 1e-4,
            "{backend}: raw output differs by {max_diff}"
        );
    }
}

/// The detections of one `detect` run on the GPU in `precision`: (label, score, box).
fn gpu_detections(image: &str, precision: &str) -> Vec<(String, f64, Vec<f64>)> {
    let model = fixture("mini_detector.onnx");
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--precision",
        precision,
        "--conf",
        "0.5",
        image,
    ];
    let (ok, stdout, stderr) = detect(&args);
    assert!(ok, "{precision}: {stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    line["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let number = |v: &serde_json::Value| v.as_f64().unwrap();
            (
                d["label"].as_str().unwrap().to_string(),
                number(&d["score"]),
                d["box"].as_array().unwrap().iter().map(number).collect(),
            )
        })
        .collect()
}

/// lavapipe has shader-f16: `--precision f16` runs and finds what f32 finds.
#[test]
fn f16_finds_the_detections_of_f32() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let image = image.to_str().unwrap();
    let (f32, f16) = (gpu_detections(image, "f32"), gpu_detections(image, "f16"));
    assert!(!f32.is_empty());
    assert_eq!(f16.len(), f32.len(), "{f16:?} vs {f32:?}");
    for (a, b) in f16.iter().zip(&f32) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() <= 2e-3, "{a:?} vs {b:?}");
        // Image pixels: 1.5 per input pixel of the 64x64 model.
        let worst =
            a.2.iter()
                .zip(&b.2)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
        assert!(worst <= 0.4, "{a:?} vs {b:?}");
    }
}

/// An fp16 export (LineCheck's own, weights stored as f16) runs in f16 tensors as it runs in f32:
/// raw outputs within f16's rounding of each other (measured 9.7e-4 relative).
#[test]
fn an_fp16_export_runs_in_f16_as_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/linecheck-defects-320-fp16.onnx");
    let raw = |precision: &str| {
        let out = dir.path().join(precision);
        let (ok, _, stderr) = detect(&[
            "--model",
            model.to_str().unwrap(),
            "--precision",
            precision,
            "--raw-out",
            out.to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        assert!(ok, "{precision}: {stderr}");
        npy::read(&std::fs::read(out.join("part.npy")).unwrap()).unwrap()
    };
    let (f32, f16) = (raw("f32"), raw("f16"));
    assert_eq!(f16.shape(), f32.shape());
    let (diff, norm) = f16
        .data()
        .iter()
        .zip(f32.data())
        .fold((0.0, 0.0), |(d, n), (&a, &b)| {
            (d + f64::from(a - b).powi(2), n + f64::from(b).powi(2))
        });
    let relative = (diff / norm).sqrt();
    assert!(
        relative > 0.0 && relative <= 5e-3,
        "relative error {relative:e}"
    );
}

/// llvmpipe through OpenGL has no shader-f16: asked for f16 there, `detect` says so and fails.
#[test]
fn f16_on_an_adapter_without_shader_f16_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let model = fixture("mini_detector.onnx");
    let model = model.to_str().unwrap();
    let image = image.to_str().unwrap();
    let (ok, _, stderr) = detect_on(Some("gl"), &["--model", model, "--precision", "f16", image]);
    assert!(
        !ok && stderr.contains("f16 needs the shader-f16 feature"),
        "{stderr}"
    );
    // The same adapter runs the model in f32.
    let (ok, _, stderr) = detect_on(Some("gl"), &["--model", model, image]);
    assert!(ok, "{stderr}");
}

#[test]
fn bad_input_gives_a_clear_error_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let image = image.to_str().unwrap();
    let model = fixture("mini_detector.onnx");
    let unsupported = fixture("unsupported_op.onnx");
    let cases: [(&[&str], &str); 6] = [
        (
            &["--model", "/nonexistent.onnx", image],
            "/nonexistent.onnx: No such file",
        ),
        (
            &["--model", env!("CARGO_MANIFEST_PATH"), image],
            "not an ONNX model",
        ),
        (
            &["--model", unsupported.to_str().unwrap(), image],
            "unsupported operator Einsum (node \"/model.0/Einsum\")",
        ),
        (
            &[
                "--model",
                model.to_str().unwrap(),
                "--backend",
                "cpu",
                "/missing.png",
            ],
            "/missing.png: No such file",
        ),
        (
            &[
                "--model",
                model.to_str().unwrap(),
                "--precision",
                "f64",
                image,
            ],
            "'f64' is not a precision: f32 or f16",
        ),
        (
            &[
                "--model",
                model.to_str().unwrap(),
                "--backend",
                "cpu",
                "--precision",
                "f16",
                image,
            ],
            "--precision f16 is for the GPU backend",
        ),
    ];
    for (args, expected) in cases {
        let (ok, _, stderr) = detect(args);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A truncated model names what is wrong instead of panicking.
    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, stderr) = detect(&["--model", truncated.to_str().unwrap(), image]);
    assert!(
        !ok && stderr.contains("truncated.onnx: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn an_end_to_end_model_prints_its_thresholded_rows_and_writes_its_k_by_6_output() {
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let raw = dir.path().join("raw");
    // In the widest gap of this image's 20 scores (0.684 and 0.651), so both backends keep 7.
    let threshold = 0.67;
    for backend in ["cpu", "gpu"] {
        let (ok, stdout, stderr) = detect(&[
            "--model",
            fixture("mini_end_to_end.onnx").to_str().unwrap(),
            "--backend",
            backend,
            "--conf",
            &threshold.to_string(),
            "--raw-out",
            raw.to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
        let written = npy::read(&std::fs::read(raw.join("part.npy")).unwrap()).unwrap();
        assert_eq!(written.shape(), [1, 20, 6]);
        let above = written
            .data()
            .chunks(6)
            .filter(|r| r[4] > threshold)
            .count();
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let detections = line["detections"].as_array().unwrap();
        assert!(
            above > 0 && above < 20,
            "{backend}: {above} rows above the threshold"
        );
        assert_eq!(detections.len(), above, "{backend}: {stdout}");
        for d in detections {
            assert!(["scratch", "dent", "crack"].contains(&d["label"].as_str().unwrap()));
        }
    }
}
