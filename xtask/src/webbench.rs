//! `cargo xtask webbench`: builds the browser bench page (`webbench/`) with everything it loads
//! served from this machine (our engine's wasm, onnxruntime-web from npm, the models, a camera
//! frame), then runs `tests/src/bin/web_bench.rs`, which serves it and times every runtime in
//! headless Chromium. A benchmark, never part of `cargo xtask test`.

use crate::{build_threaded_wasm, cargo, check_status, target_dir, tools, workspace_root};
use anyhow::{Context, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The onnxruntime-web the page times (issue 4 names 1.30).
const ORT_WEB_VERSION: &str = "1.30.0";

const USAGE: &str = "\
usage: cargo xtask webbench [--ultralytics-python PYTHON] [web_bench flags]
  --ultralytics-python PYTHON  a Python with ultralytics, torch and onnx: also times an Ultralytics
                               YOLOv8n at 320 (exported once into the target directory)
  web_bench flags              --runs N --warmup N --gpu-runs N --gpu-warmup N --threads 1,2
                               --models a.onnx,b.onnx --no-gpu --profile-cpu --profile-gpu
                               --gpu-conv auto,tiled,whole,tiling0,tiling1,direct: one row of ours
                               on WebGPU per choice of convolution kernels, in the same session
                               (default auto: the adapter's choice, as the kiosk runs)
                               (see tests/src/bin/web_bench/main.rs)";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (ultralytics_python, passed_on) = match args {
        [flag, python, rest @ ..] if flag == "--ultralytics-python" => {
            (Some(PathBuf::from(python)), rest)
        }
        [flag, ..] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return Ok(());
        }
        rest => (None, rest),
    };
    tools::ensure_wasm_tools()?;
    let site = target_dir().join("webbench/site");
    if site.exists() {
        std::fs::remove_dir_all(&site).with_context(|| format!("clearing {}", site.display()))?;
    }
    std::fs::create_dir_all(site.join("models"))?;
    build_engine(&site.join("engine"))?;
    bind_engine(
        &build_threaded_wasm("linecheck-webbench", None, "wasm-release")?,
        &site.join("engine-threads"),
    )?;
    for entry in std::fs::read_dir(workspace_root().join("webbench/page"))? {
        let path = entry?.path();
        std::fs::copy(
            &path,
            site.join(path.file_name().expect("a file in the folder")),
        )?;
    }
    std::os::unix::fs::symlink(onnxruntime_web()?, site.join("ort"))?;
    let python = tools::ensure_python()?;
    check_status(
        Command::new(&python)
            .arg(workspace_root().join("webbench/camera_frame.py"))
            .arg("--out")
            .arg(site.join("camera-frame.png")),
        "rendering the camera frame (webbench/camera_frame.py)",
    )?;
    let shipped = "linecheck-defects-320.onnx";
    std::fs::copy(
        workspace_root().join("models").join(shipped),
        site.join("models").join(shipped),
    )?;
    match ultralytics_python {
        Some(python) => {
            let yolo = yolov8n(&python)?;
            std::fs::copy(&yolo, site.join("models/yolov8n-320.onnx"))?;
        }
        None => println!(
            "xtask: webbench: no --ultralytics-python, so no YOLOv8n (only {shipped}); see --help"
        ),
    }
    let site_arg = site.to_string_lossy().into_owned();
    let mut bench_args = vec![
        "run",
        "--package",
        "linecheck-e2e",
        "--bin",
        "web_bench",
        "--",
        "--site",
        &site_arg,
    ];
    bench_args.extend(passed_on.iter().map(String::as_str));
    cargo(&bench_args)
}

/// Our engine for the page's workers, built as the kiosk's detection worker is (profile
/// `wasm-release`, wasm SIMD, wasm-opt -O3), bound for ES-module import: single-threaded here,
/// with threads beside it (`engine-threads`, for the cross-origin-isolated page).
fn build_engine(out: &Path) -> anyhow::Result<()> {
    cargo(&[
        "build",
        "--package",
        "linecheck-webbench",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ])?;
    bind_engine(
        &target_dir().join("wasm32-unknown-unknown/wasm-release/linecheck_webbench.wasm"),
        out,
    )
}

/// Binds a built engine for ES-module import. Function names are kept (the name section only, no
/// effect on the code) for `--profile-cpu`.
fn bind_engine(wasm: &Path, out: &Path) -> anyhow::Result<()> {
    tools::bind_for_web(wasm, out, "linecheck_webbench", &["-O3", "--debuginfo"])
}

/// onnxruntime-web's `dist/` folder, installed from npm beside the other npm tools once.
fn onnxruntime_web() -> anyhow::Result<PathBuf> {
    let prefix = tools::tools_dir().join("onnxruntime-web");
    let package = prefix.join("node_modules/onnxruntime-web");
    let installed = std::fs::read_to_string(package.join("package.json")).unwrap_or_default();
    if !installed.contains(&format!("\"version\": \"{ORT_WEB_VERSION}\"")) {
        println!("xtask: installing onnxruntime-web@{ORT_WEB_VERSION} from npm");
        std::fs::create_dir_all(&prefix)?;
        check_status(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("onnxruntime-web@{ORT_WEB_VERSION}")),
            "npm install onnxruntime-web",
        )?;
    }
    let dist = package.join("dist");
    if !dist.join("ort.bundle.min.mjs").is_file() {
        bail!("{} has no ort.bundle.min.mjs", dist.display());
    }
    Ok(dist)
}

/// An untrained Ultralytics YOLOv8n at 320, exported once (`webbench/export_yolov8n.py`).
fn yolov8n(python: &Path) -> anyhow::Result<PathBuf> {
    let model = target_dir().join("webbench/yolov8n-320.onnx");
    if !model.is_file() {
        check_status(
            Command::new(python)
                .arg(workspace_root().join("webbench/export_yolov8n.py"))
                .arg("--out")
                .arg(&model),
            "exporting YOLOv8n (webbench/export_yolov8n.py)",
        )?;
    }
    Ok(model)
}
