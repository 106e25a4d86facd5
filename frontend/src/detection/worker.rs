//! The detection worker's side: one model per worker (the page starts a new worker to switch
//! models), run on the backend measured fastest on this tablet.

use super::{
    AssignedModel, BackendChoice, BackendKind, EngineInfo, FromWorker, ToWorker,
    cross_origin_isolated,
};
use crate::gpu_check;
use protocol::{BoundingBox, Detection, ModelRef};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use vision_engine::{
    Backend, CpuNetwork, Detector, GpuBackend, GpuNetwork, postprocess::NmsOptions,
};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DedicatedWorkerGlobalScope, ImageBitmap, MessageEvent, OffscreenCanvas,
    OffscreenCanvasRenderingContext2d,
};

/// The network on the backend it runs on. The detector and GPU backend are leaked on purpose:
/// they live as long as the worker, and `GpuNetwork` borrows both.
enum Runner {
    Gpu(Box<GpuNetwork<'static>>),
    Cpu(CpuNetwork<'static>),
}

struct Engine {
    detector: &'static Detector,
    runner: Runner,
    options: Cell<NmsOptions>,
    /// Where frames are drawn to read their RGBA pixels; resized to each frame.
    canvas: OffscreenCanvas,
    context: OffscreenCanvasRenderingContext2d,
}

thread_local! {
    static ENGINE: RefCell<Option<&'static Engine>> = const { RefCell::new(None) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromWorker) {
    match serde_wasm_bindgen::to_value(message) {
        Ok(value) => {
            let _ = scope().post_message(&value);
        }
        Err(e) => web_sys::console::error_1(&format!("unencodable message: {e}").into()),
    }
}

fn now_ms() -> f64 {
    scope().performance().map_or(0.0, |p| p.now())
}

/// The name of the workers that are the CPU backend's other threads in the threaded build: they
/// serve the thread pool (public/detection-worker-threads_loader.js), not this worker's messages.
const CPU_THREAD_NAME: &str = "linecheck-cpu-thread";

/// The worker binary's entry point.
pub fn run() {
    if scope().name() == CPU_THREAD_NAME {
        return;
    }
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(|event: MessageEvent| {
        wasm_bindgen_futures::spawn_local(handle(event));
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&FromWorker::Started);
}

async fn handle(event: MessageEvent) {
    let data = js_sys::Array::from(&event.data());
    let message: ToWorker = match serde_wasm_bindgen::from_value(data.get(0)) {
        Ok(m) => m,
        Err(e) => {
            post(&FromWorker::Failed {
                reason: format!("unreadable message: {e}"),
            });
            return;
        }
    };
    match message {
        ToWorker::SetConfidence { confidence } => {
            if let Some(engine) = ENGINE.with(|e| *e.borrow()) {
                engine.options.set(NmsOptions {
                    confidence,
                    ..engine.options.get()
                });
            }
        }
        ToWorker::Load {
            url,
            assigned,
            remembered,
            confidence,
        } => match load(&url, assigned.as_ref(), remembered, confidence).await {
            Ok((engine, info)) => {
                ENGINE.with(|e| *e.borrow_mut() = Some(engine));
                post(&FromWorker::Ready(info));
            }
            Err(reason) => post(&FromWorker::Failed { reason }),
        },
        ToWorker::Detect { frame_id } => {
            let bitmap: ImageBitmap = data.get(1).unchecked_into();
            let engine = ENGINE.with(|e| *e.borrow());
            let result = match engine {
                Some(engine) => engine.detect_bitmap(&bitmap).await,
                None => Err("no model is loaded".to_string()),
            };
            bitmap.close();
            post(&match result {
                Ok((detections, infer_ms)) => FromWorker::Detections {
                    frame_id,
                    detections,
                    infer_ms,
                },
                Err(reason) => FromWorker::Failed { reason },
            });
        }
    }
}

/// Assigned models, kept apart from the service worker's per-build caches (which it deletes on
/// every update), so a kiosk restarts offline with the model it was given.
const MODEL_CACHE: &str = "assigned-models";

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of an assigned model: from the worker's cache, else downloaded with the station's
/// token and cached, in both cases only if they hash to what the server announced.
async fn assigned_model_bytes(url: &str, assigned: &AssignedModel) -> Result<Vec<u8>, String> {
    let failed = |e: JsValue| format!("the model cache: {e:?}");
    let cache: web_sys::Cache = JsFuture::from(scope().caches().map_err(failed)?.open(MODEL_CACHE))
        .await
        .map_err(failed)?
        .unchecked_into();
    let cached = JsFuture::from(cache.match_with_str(url))
        .await
        .map_err(failed)?;
    if !cached.is_undefined() {
        let response: web_sys::Response = cached.unchecked_into();
        let buffer = JsFuture::from(response.array_buffer().map_err(failed)?)
            .await
            .map_err(failed)?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        if hex_sha256(&bytes) == assigned.sha256 {
            return Ok(bytes);
        }
    }
    let bytes = fetch_with_progress(url, Some(&assigned.token)).await?;
    let sha256 = hex_sha256(&bytes);
    if sha256 != assigned.sha256 {
        return Err(format!(
            "the downloaded model {} has SHA-256 {sha256}, not {} as assigned",
            assigned.model.id, assigned.sha256
        ));
    }
    let mut copy = bytes.clone();
    let response = web_sys::Response::new_with_opt_u8_array(Some(&mut copy)).map_err(failed)?;
    JsFuture::from(cache.put_with_str(url, &response))
        .await
        .map_err(failed)?;
    Ok(bytes)
}

/// Downloads `url` (with the station token as bearer, where given), posting progress about
/// every 5 %.
async fn fetch_with_progress(url: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let failed = |e: JsValue| format!("downloading {url}: {e:?}");
    let init = web_sys::RequestInit::new();
    if let Some(token) = token {
        let headers = web_sys::Headers::new().map_err(failed)?;
        headers
            .set("authorization", &format!("Bearer {token}"))
            .map_err(failed)?;
        init.set_headers(&headers);
    }
    let response: web_sys::Response = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(failed)?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("downloading {url}: HTTP {}", response.status()));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let body = response.body().ok_or_else(|| format!("{url}: no body"))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut reported = 0u64;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(failed)?;
        if js_sys::Reflect::get(&chunk, &"done".into())
            .map_err(failed)?
            .is_truthy()
        {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(failed)?;
        bytes.extend(js_sys::Uint8Array::new(&value).to_vec());
        let loaded = bytes.len() as u64;
        if total.is_none_or(|t| (loaded - reported) * 20 >= t) {
            reported = loaded;
            post(&FromWorker::Progress { loaded, total });
        }
    }
    post(&FromWorker::Progress {
        loaded: bytes.len() as u64,
        total,
    });
    Ok(bytes)
}

/// The model's identity in records: its file name, and its content hash as the version, so two
/// different files can never pass for one.
fn model_ref(url: &str, bytes: &[u8]) -> ModelRef {
    let name = url.rsplit('/').next().unwrap_or(url);
    ModelRef {
        id: name.strip_suffix(".onnx").unwrap_or(name).to_string(),
        version: hex_sha256(bytes)[..12].to_string(),
    }
}

async fn load(
    url: &str,
    assigned: Option<&AssignedModel>,
    remembered: Option<BackendChoice>,
    confidence: f32,
) -> Result<(&'static Engine, EngineInfo), String> {
    let bytes = match assigned {
        Some(assigned) => assigned_model_bytes(url, assigned).await?,
        None => fetch_with_progress(url, None).await?,
    };
    let started = now_ms();
    let model = assigned.map_or_else(|| model_ref(url, &bytes), |a| a.model.clone());
    let preferred = remembered
        .filter(|choice| choice.model_version == model.version)
        .map(|choice| choice.backend);
    let detector: &'static Detector = Box::leak(Box::new(
        Detector::from_onnx_bytes(&bytes).map_err(|e| e.to_string())?,
    ));
    let gpu = if preferred == Some(BackendKind::Cpu) {
        Err("measured slower than the CPU on this tablet".to_string())
    } else {
        gpu_check::check().await
    };
    let gpu_name = gpu.as_ref().map(GpuBackend::name).map_err(Clone::clone);
    let canvas = OffscreenCanvas::new(1, 1).map_err(|e| format!("{e:?}"))?;
    let context: OffscreenCanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no 2D context in the worker")?
        .unchecked_into();
    let options = Cell::new(NmsOptions {
        confidence,
        ..NmsOptions::default()
    });
    // The CPU backend (its threads, its packed weights) is set up only where it may run: not
    // when an earlier start measured the GPU faster and it is there.
    let mut cpu_threads = 0;
    let mut cpu_runner = async || -> Result<Runner, String> {
        cpu_threads = start_cpu_threads().await?;
        Ok(Runner::Cpu(
            CpuNetwork::new(detector.network()).map_err(|e| e.to_string())?,
        ))
    };
    let leak_engine = |runner| -> &'static Engine {
        Box::leak(Box::new(Engine {
            detector,
            runner,
            options: options.clone(),
            canvas: canvas.clone(),
            context: context.clone(),
        }))
    };
    let mut measured_ms = Vec::new();
    let engine = match gpu {
        Err(_) => leak_engine(cpu_runner().await?),
        Ok(gpu) => {
            let gpu: &'static GpuBackend = Box::leak(Box::new(gpu));
            let prepared = gpu.prepare(detector.network()).map_err(|e| e.to_string())?;
            let on_gpu = leak_engine(Runner::Gpu(Box::new(prepared)));
            if preferred == Some(BackendKind::Gpu) {
                on_gpu
            } else {
                // First start on this tablet: a software adapter can be a hundred times slower
                // than the CPU, so measure one warm frame on each and keep the faster.
                let on_cpu = leak_engine(cpu_runner().await?);
                on_gpu.time_blank_frame().await?;
                let gpu_ms = on_gpu.time_blank_frame().await?;
                let cpu_ms = on_cpu.time_blank_frame().await?;
                measured_ms = vec![(BackendKind::Gpu, gpu_ms), (BackendKind::Cpu, cpu_ms)];
                if gpu_ms <= cpu_ms { on_gpu } else { on_cpu }
            }
        }
    };
    if measured_ms.is_empty() {
        engine.time_blank_frame().await?;
    }
    let info = EngineInfo {
        backend: match engine.runner {
            Runner::Gpu(_) => BackendKind::Gpu,
            Runner::Cpu(_) => BackendKind::Cpu,
        },
        gpu: gpu_name,
        model,
        labels: detector.labels().to_vec(),
        input: detector.input_size(),
        measured_ms,
        cpu_threads,
        cold_start_ms: now_ms() - started,
        cross_origin_isolated: cross_origin_isolated(),
    };
    Ok((engine, info))
}

/// In the threaded build, starts the CPU backend's other threads (one per core beyond this one,
/// up to `MAX_CPU_THREADS` in all) as workers on this worker's module and memory, waits up to 2 s
/// for them to serve, and returns the threads the backend runs on.
#[cfg(target_feature = "atomics")]
async fn start_cpu_threads() -> Result<usize, String> {
    /// Most threads the CPU backend runs on: a tablet's big cores, not its little ones.
    const MAX_CPU_THREADS: usize = 4;
    let js_error = |e: JsValue| format!("starting the CPU backend's threads: {e:?}");
    let cores = scope().navigator().hardware_concurrency() as usize;
    let threads = cores.clamp(1, MAX_CPU_THREADS);
    vision_engine::cpu::set_worker_threads(threads);
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(CPU_THREAD_NAME);
    let message = js_sys::Object::new();
    js_sys::Reflect::set(&message, &"module".into(), &wasm_bindgen::module()).map_err(js_error)?;
    js_sys::Reflect::set(&message, &"memory".into(), &wasm_bindgen::memory()).map_err(js_error)?;
    let script = scope().location().href();
    for _ in 1..threads {
        let worker = web_sys::Worker::new_with_options(&script, &options).map_err(js_error)?;
        worker.post_message(&message).map_err(js_error)?;
        // It serves for as long as this worker lives.
        std::mem::forget(worker);
    }
    for _ in 0..200 {
        if vision_engine::cpu::serving_threads() + 1 >= threads {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(10).await;
    }
    Ok(vision_engine::cpu::serving_threads() + 1)
}

/// The single-threaded build: the CPU backend runs on this worker's thread.
#[cfg(not(target_feature = "atomics"))]
async fn start_cpu_threads() -> Result<usize, String> {
    Ok(1)
}

impl Engine {
    /// Runs a mid-grey frame of the model's size: nothing to find, everything to run.
    async fn time_blank_frame(&self) -> Result<f64, String> {
        let (width, height) = self.detector.input_size();
        let frame = vec![128u8; (width * height * 4) as usize];
        let started = now_ms();
        self.detect_rgba(&frame, width, height).await?;
        Ok(now_ms() - started)
    }

    async fn detect_rgba(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Vec<vision_engine::Detection>, String> {
        let result = match &self.runner {
            Runner::Gpu(network) => {
                self.detector
                    .detect(&**network, rgba, width, height, self.options.get())
                    .await
            }
            Runner::Cpu(network) => {
                self.detector
                    .detect(network, rgba, width, height, self.options.get())
                    .await
            }
        };
        Ok(result.map_err(|e| e.to_string())?.detections)
    }

    async fn detect_bitmap(&self, bitmap: &ImageBitmap) -> Result<(Vec<Detection>, f64), String> {
        let started = now_ms();
        let (width, height) = (bitmap.width(), bitmap.height());
        if self.canvas.width() != width || self.canvas.height() != height {
            self.canvas.set_width(width);
            self.canvas.set_height(height);
        }
        self.context
            .draw_image_with_image_bitmap(bitmap, 0.0, 0.0)
            .map_err(|e| format!("drawing the frame: {e:?}"))?;
        let rgba = self
            .context
            .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
            .map_err(|e| format!("reading the frame: {e:?}"))?
            .data()
            .0;
        let detections = self
            .detect_rgba(&rgba, width, height)
            .await?
            .into_iter()
            .map(|d| Detection {
                class_id: d.class_id,
                label: d.label,
                score: d.score,
                bbox: BoundingBox {
                    x1: d.bbox[0],
                    y1: d.bbox[1],
                    x2: d.bbox[2],
                    y2: d.bbox[3],
                },
            })
            .collect();
        Ok((detections, now_ms() - started))
    }
}
