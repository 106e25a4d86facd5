//! LineCheck's detector runtime.
//!
//! Two backends implement one interface, [`Backend`]: [`GpuBackend`] runs the WGSL kernels of the
//! `kernels` crate on wgpu (Vulkan/Metal/DX12 natively, WebGPU in the browser), [`CpuBackend`] is
//! the plain-Rust reference and the fallback where a browser has no adapter. Both must pass the
//! same conformance suite (`tests/conformance.rs`).
//!
//! Pre- and post-processing that does not depend on the backend lives here too: Ultralytics-style
//! letterbox geometry, decoding of `[1, 4 + classes, N]` detector outputs with NMS, and of
//! end-to-end `[1, K, 6]` outputs without.
//!
//! This crate knows nothing of Yew, IndexedDB or HTTP.

mod backend;
pub mod cpu;
mod detector;
pub mod end_to_end;
mod error;
pub mod f16;
mod gpu;
pub mod graph;
pub mod letterbox;
pub mod npy;
pub mod onnx;
pub mod postprocess;
mod tensor;

pub use backend::{
    Activation, Backend, ConvKernels, CpuBackend, CpuNetwork, GpuBackend, GpuNetwork, LaunchTime,
    conv_kernels_for,
};
pub use detector::{Detection, DetectionResult, Detector, DetectorError};
pub use error::EngineError;
pub use gpu::{AdapterSummary, GpuContext};
pub use kernels::Precision;
pub use tensor::{ShapeError, Tensor, normalize_axis, strides};
