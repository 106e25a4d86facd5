//! The engine's side of the browser bench page (`webbench/page/`, driven by `cargo xtask
//! webbench`): vision-engine compiled to wasm, called from the page's worker as a few plain
//! functions so that the page times our engine exactly as it times onnxruntime-web, from
//! JavaScript around each call.
//!
//! One worker benchmarks one runtime on one model and is then terminated, so the loaded model,
//! GPU backend and prepared network live in this module's globals for the worker's life (leaked
//! on purpose, as the kiosk's detection worker does).

use std::cell::Cell;
use vision_engine::{
    ConvKernels, CpuNetwork, Detector, GpuBackend, GpuNetwork, Tensor,
    graph::Executor,
    letterbox::{Letterbox, to_input},
};
use wasm_bindgen::prelude::*;

/// The network on the backend it runs on.
enum Runner {
    Gpu(Box<GpuNetwork<'static>>),
    Cpu(CpuNetwork<'static>),
}

thread_local! {
    static DETECTOR: Cell<Option<&'static Detector>> = const { Cell::new(None) };
    static GPU: Cell<Option<&'static GpuBackend>> = const { Cell::new(None) };
    static RUNNER: Cell<Option<&'static Runner>> = const { Cell::new(None) };
}

fn error(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

fn detector() -> Result<&'static Detector, JsError> {
    DETECTOR
        .get()
        .ok_or_else(|| error("no model: call parse_model first"))
}

/// Threads for the CPU backend. In the threaded build (`engine-threads`) the page then starts
/// `threads - 1` workers, each instantiating [`wasm_module`] on [`wasm_memory`] and calling
/// [`serve_cpu_thread`].
#[wasm_bindgen]
pub fn set_cpu_threads(threads: usize) {
    vision_engine::cpu::set_worker_threads(threads);
}

/// This compiled module, for a CPU thread's worker to instantiate.
#[wasm_bindgen]
pub fn wasm_module() -> JsValue {
    wasm_bindgen::module()
}

/// This module's memory (shared, in the threaded build), for a CPU thread's worker.
#[wasm_bindgen]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// Makes the calling worker one of the CPU backend's threads, for the worker's life (it blocks
/// between ops, which workers may).
#[wasm_bindgen]
pub fn serve_cpu_thread() {
    vision_engine::cpu::serve_as_worker()
}

/// Parses and folds an ONNX detector; returns its input shape `[1, 3, H, W]`.
#[wasm_bindgen]
pub fn parse_model(bytes: &[u8]) -> Result<Vec<u32>, JsError> {
    let detector: &'static Detector =
        Box::leak(Box::new(Detector::from_onnx_bytes(bytes).map_err(error)?));
    DETECTOR.set(Some(detector));
    Ok(detector
        .network()
        .input_shape
        .iter()
        .map(|&d| d as u32)
        .collect())
}

/// The parsed model's first output shape (`[1, 4 + classes, anchors]` for a detector).
#[wasm_bindgen]
pub fn output_shape() -> Result<Vec<u32>, JsError> {
    let (_, shape) = detector()?
        .network()
        .outputs
        .first()
        .ok_or_else(|| error("the model has no output"))?;
    Ok(shape.iter().map(|&d| d as u32).collect())
}

/// The convolution kernels `conv` names (`web_bench --gpu-conv`): "auto" (the adapter's choice,
/// as the kiosk gets it), "tiled" (tiling and split-k per layer), "whole" (tiling per layer,
/// never split), "tilingN" (tiling N of `kernels::CONV_TILINGS` for every layer, never split),
/// "direct".
fn conv_kernels(gpu: &GpuBackend, conv: &str) -> Result<ConvKernels, JsError> {
    let tilings = kernels::CONV_TILINGS.len();
    Ok(match conv {
        "auto" => gpu.conv_kernels(),
        "tiled" => ConvKernels::Tiled,
        "whole" => ConvKernels::TiledWhole,
        "direct" => ConvKernels::Direct,
        _ => match conv.strip_prefix("tiling").map(str::parse::<usize>) {
            Some(Ok(i)) if i < tilings => ConvKernels::Tiling(i),
            _ => {
                return Err(error(format!(
                    "conv kernels \"{conv}\": expected auto, tiled, whole, direct or tiling0..{}",
                    tilings - 1
                )));
            }
        },
    })
}

/// Opens the WebGPU device and creates every pipeline, with convolutions on the kernels `conv`
/// names ([`conv_kernels`]); returns the adapter's description.
#[wasm_bindgen]
pub async fn start_gpu(conv: &str) -> Result<String, JsError> {
    let gpu: &'static GpuBackend = Box::leak(Box::new(GpuBackend::new().await.map_err(error)?));
    gpu.set_conv_kernels(conv_kernels(gpu, conv)?);
    GPU.set(Some(gpu));
    Ok(gpu.context().adapter().to_string())
}

/// The kernels the GPU's convolutions run on, described (after `start_gpu`).
#[wasm_bindgen]
pub fn gpu_conv_kernels() -> Result<String, JsError> {
    let gpu = GPU
        .get()
        .ok_or_else(|| error("no GPU backend: call start_gpu first"))?;
    Ok(gpu.conv_kernels().to_string())
}

/// Makes the parsed model ready to run on `backend` ("gpu": weights uploaded and every launch
/// bound, after `start_gpu`; "cpu": weights packed for the CPU backend).
#[wasm_bindgen]
pub fn prepare(backend: &str) -> Result<(), JsError> {
    let network = detector()?.network();
    let runner = match backend {
        "gpu" => {
            let gpu = GPU
                .get()
                .ok_or_else(|| error("no GPU backend: call start_gpu first"))?;
            Runner::Gpu(Box::new(gpu.prepare(network).map_err(error)?))
        }
        "cpu" => Runner::Cpu(CpuNetwork::new(network).map_err(error)?),
        other => return Err(error(format!("backend \"{other}\": expected gpu or cpu"))),
    };
    RUNNER.set(Some(Box::leak(Box::new(runner))));
    Ok(())
}

/// One inference on an input of the model's shape (NCHW, f32): the first output's values.
#[wasm_bindgen]
pub async fn run(input: Vec<f32>) -> Result<Vec<f32>, JsError> {
    let runner = RUNNER
        .get()
        .ok_or_else(|| error("nothing prepared: call prepare first"))?;
    let shape = detector()?.network().input_shape.clone();
    let input = Tensor::new(shape, input).map_err(error)?;
    let outputs = match runner {
        Runner::Gpu(network) => network.execute(input).await,
        Runner::Cpu(network) => network.execute(input).await,
    }
    .map_err(error)?;
    let first = outputs
        .into_iter()
        .next()
        .ok_or_else(|| error("the model has no output"))?;
    Ok(first.data().to_vec())
}

/// GPU memory the prepared network's activations take, in bytes (GPU only).
#[wasm_bindgen]
pub fn activation_bytes() -> Option<f64> {
    match RUNNER.get()? {
        Runner::Gpu(network) => Some(network.activation_bytes() as f64),
        Runner::Cpu(_) => None,
    }
}

fn gpu_network() -> Result<&'static GpuNetwork<'static>, JsError> {
    match RUNNER.get() {
        Some(Runner::Gpu(network)) => Ok(network),
        _ => Err(error("no network prepared on the GPU")),
    }
}

/// GPU milliseconds of one inference (every launch in one pass, timestamp queries); nothing where
/// the adapter has no timestamps.
#[wasm_bindgen]
pub async fn gpu_ms() -> Result<Option<f64>, JsError> {
    gpu_network()?.gpu_ms().await.map_err(error)
}

/// Where the GPU time goes: each launch in a pass of its own, summed by kernel, one line per
/// kernel ("kernel, launches, ms"), largest first; nothing where the adapter has no timestamps.
#[wasm_bindgen]
pub async fn gpu_profile() -> Result<Option<String>, JsError> {
    let Some(launches) = gpu_network()?.profile().await.map_err(error)? else {
        return Ok(None);
    };
    let mut by_kernel: Vec<(&str, usize, f64)> = Vec::new();
    for launch in &launches {
        match by_kernel.iter_mut().find(|(k, _, _)| *k == launch.kernel) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += launch.ms;
            }
            None => by_kernel.push((launch.kernel, 1, launch.ms)),
        }
    }
    by_kernel.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Some(
        by_kernel
            .iter()
            .map(|(kernel, count, ms)| format!("{kernel}, {count} launches, {ms:.1} ms\n"))
            .collect(),
    ))
}

/// Letterboxes an RGBA image (`width` x `height`) into an NCHW f32 input of `input_width` x
/// `input_height`, as the engine does for camera frames: the one input every runtime gets.
#[wasm_bindgen]
pub fn letterbox_input(
    rgba: &[u8],
    width: u32,
    height: u32,
    input_width: u32,
    input_height: u32,
) -> Result<Vec<f32>, JsError> {
    if width == 0
        || height == 0
        || input_width == 0
        || input_height == 0
        || rgba.len() != width as usize * height as usize * 4
    {
        return Err(error(format!(
            "{} bytes is not a {width}x{height} RGBA image (input {input_width}x{input_height})",
            rgba.len()
        )));
    }
    let letterbox = Letterbox::new(width, height, input_width, input_height);
    Ok(to_input(rgba, &letterbox).data().to_vec())
}
