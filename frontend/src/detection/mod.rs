//! Detection off the UI thread: the page (`client`) posts camera frames to a dedicated Web
//! Worker (`worker`, built as its own wasm binary) that runs vision-engine on WebGPU, or on the
//! CPU backend where there is no usable adapter, and posts the boxes back.
//!
//! Messages are JSON-shaped enums; a frame travels beside its message as a transferred
//! `ImageBitmap`, so the pixels are never copied through the message queue.

pub mod client;
pub mod worker;

use protocol::{Detection, ModelRef};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Gpu,
    Cpu,
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToWorker {
    /// Load the model at `url`, on the backend `remembered` for this model's version; without
    /// one, measure both and pick the faster (see [`EngineInfo::measured_ms`]).
    Load {
        url: String,
        /// A model a supervisor assigned: its identity, content hash and the station token its
        /// download needs. It is kept in the worker's own cache once its hash checked out.
        assigned: Option<AssignedModel>,
        remembered: Option<BackendChoice>,
        confidence: f32,
    },
    /// Lowest score a box is kept with: the smallest class threshold of the station.
    SetConfidence { confidence: f32 },
    /// Detect in the `ImageBitmap` transferred with this message.
    Detect { frame_id: u64 },
}

/// The backend measured fastest for one model version on this tablet; a new model is measured
/// again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendChoice {
    pub model_version: String,
    pub backend: BackendKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedModel {
    pub model: ModelRef,
    pub sha256: String,
    pub token: String,
}

/// The model every kiosk starts with, copied into the build by trunk (frontend/index.html).
pub const DEFAULT_MODEL: &str = "linecheck-defects-320-fp16.onnx";

/// What the worker runs on, for the status panel and the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub backend: BackendKind,
    /// The WebGPU adapter's name, or why there is none that can be trusted.
    pub gpu: Result<String, String>,
    pub model: ModelRef,
    pub labels: Vec<String>,
    pub input: (u32, u32),
    /// One warm frame per backend, when the choice was measured at this start.
    pub measured_ms: Vec<(BackendKind, f64)>,
    /// Threads the CPU backend runs on (more than 1 in the threaded build, on an isolated page);
    /// 0 where it was not set up (the GPU, measured faster at an earlier start, runs).
    pub cpu_threads: usize,
    /// From model bytes to the first result on the chosen backend.
    pub cold_start_ms: f64,
    /// The worker's `crossOriginIsolated`: whether it can share a `WebAssembly.Memory` between
    /// threads. The server's headers (and the service worker's, offline) make it so.
    pub cross_origin_isolated: bool,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's wasm is up and listening. Messages posted before this would be dropped (a
    /// worker that is still instantiating has no handler yet), so the page queues them until then.
    Started,
    /// Model download progress; `total` is unknown without a Content-Length.
    Progress {
        loaded: u64,
        total: Option<u64>,
    },
    Ready(EngineInfo),
    Detections {
        frame_id: u64,
        /// Boxes in the frame's own pixels.
        detections: Vec<Detection>,
        /// Frame to boxes inside the worker: pixel read-out, letterbox, network, NMS.
        infer_ms: f64,
    },
    Failed {
        reason: String,
    },
}

/// `crossOriginIsolated` of this global, the page's or a worker's (web-sys does not bind it).
pub(crate) fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"crossOriginIsolated".into())
        .is_ok_and(|value| value.is_truthy())
}
