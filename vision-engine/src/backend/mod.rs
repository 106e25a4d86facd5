//! The interface every backend implements, and the two that exist: the CPU reference and wgpu.

mod cpu;
mod cpu_network;
mod gpu;

pub use cpu::CpuBackend;
pub use cpu_network::CpuNetwork;
pub use gpu::{ConvKernels, GpuBackend, GpuNetwork, LaunchTime, conv_kernels_for};

use crate::{
    EngineError, Tensor,
    cpu::{BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
};

/// The activations the engine fuses into or runs after its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    Silu,
}

impl Activation {
    pub const ALL: [Activation; 2] = [Activation::Sigmoid, Activation::Silu];

    /// The reference definition every backend must reproduce.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// What every backend offers, op by op, on host tensors. `tests/conformance.rs` runs the same
/// checks against each; the CPU backend defines the expected results.
#[allow(async_fn_in_trait)] // Implemented in this crate only; the browser's futures are not Send.
pub trait Backend {
    /// A short name for reports: "cpu" or the adapter.
    fn name(&self) -> String;

    async fn activation(&self, kind: Activation, input: &Tensor) -> Result<Tensor, EngineError>;

    /// `activation(conv(input, weight) + bias)`, the fused block of every YOLO layer, plus
    /// `residual` where given (a shortcut: a tensor of the output's shape).
    async fn conv2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        attrs: &Conv2d,
        activation: Option<Activation>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor, EngineError>;

    async fn max_pool2d(&self, input: &Tensor, attrs: &MaxPool2d) -> Result<Tensor, EngineError>;

    async fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError>;

    async fn transpose(&self, input: &Tensor, perm: &[usize]) -> Result<Tensor, EngineError>;

    async fn slice(
        &self,
        input: &Tensor,
        starts: &[i64],
        ends: &[i64],
        axes: Option<&[i64]>,
        steps: Option<&[i64]>,
    ) -> Result<Tensor, EngineError>;

    async fn concat(&self, inputs: &[&Tensor], axis: i64) -> Result<Tensor, EngineError>;

    async fn split(
        &self,
        input: &Tensor,
        axis: i64,
        sizes: &[usize],
    ) -> Result<Vec<Tensor>, EngineError>;

    async fn gather(
        &self,
        input: &Tensor,
        axis: i64,
        indices: &[i64],
        indices_shape: &[usize],
    ) -> Result<Tensor, EngineError>;

    async fn resize_nearest(
        &self,
        input: &Tensor,
        output_shape: &[usize],
        scales: Option<&[f32]>,
        transform: CoordinateTransform,
        rounding: NearestRounding,
    ) -> Result<Tensor, EngineError>;

    async fn softmax(&self, input: &Tensor, axis: i64) -> Result<Tensor, EngineError>;

    async fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError>;

    /// `ReduceMax` over contiguous `axes` (empty: all).
    async fn reduce_max(
        &self,
        input: &Tensor,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<Tensor, EngineError>;

    /// Sorted `TopK`: values and indices (exact integers held as f32), ties in index order.
    async fn top_k(
        &self,
        input: &Tensor,
        axis: i64,
        k: usize,
        largest: bool,
    ) -> Result<Vec<Tensor>, EngineError>;

    /// `GatherElements` with indices held as f32.
    async fn gather_elements(
        &self,
        data: &Tensor,
        indices: &Tensor,
        axis: i64,
    ) -> Result<Tensor, EngineError>;

    async fn expand(&self, input: &Tensor, shape: &[usize]) -> Result<Tensor, EngineError>;
}
