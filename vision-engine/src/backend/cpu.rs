use super::{Activation, Backend};
use crate::{
    EngineError, Tensor,
    cpu::{self, BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
};

/// The plain-Rust reference backend; also the fallback where no GPU adapter exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    async fn activation(&self, kind: Activation, input: &Tensor) -> Result<Tensor, EngineError> {
        let mut output = input.clone();
        cpu::activate_in_place(kind, output.data_mut());
        Ok(output)
    }

    async fn conv2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        attrs: &Conv2d,
        activation: Option<Activation>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::conv2d_then(
            input, weight, bias, attrs, activation, residual,
        )?)
    }

    async fn max_pool2d(&self, input: &Tensor, attrs: &MaxPool2d) -> Result<Tensor, EngineError> {
        Ok(cpu::max_pool2d(input, attrs)?)
    }

    async fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        Ok(cpu::binary(op, a, b)?)
    }

    async fn transpose(&self, input: &Tensor, perm: &[usize]) -> Result<Tensor, EngineError> {
        Ok(cpu::transpose(input, perm)?)
    }

    async fn slice(
        &self,
        input: &Tensor,
        starts: &[i64],
        ends: &[i64],
        axes: Option<&[i64]>,
        steps: Option<&[i64]>,
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::slice(input, starts, ends, axes, steps)?)
    }

    async fn concat(&self, inputs: &[&Tensor], axis: i64) -> Result<Tensor, EngineError> {
        Ok(cpu::concat(inputs, axis)?)
    }

    async fn split(
        &self,
        input: &Tensor,
        axis: i64,
        sizes: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        Ok(cpu::split(input, axis, sizes)?)
    }

    async fn gather(
        &self,
        input: &Tensor,
        axis: i64,
        indices: &[i64],
        indices_shape: &[usize],
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::gather(input, axis, indices, indices_shape)?)
    }

    async fn resize_nearest(
        &self,
        input: &Tensor,
        output_shape: &[usize],
        scales: Option<&[f32]>,
        transform: CoordinateTransform,
        rounding: NearestRounding,
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::resize_nearest(
            input,
            output_shape,
            scales,
            transform,
            rounding,
        )?)
    }

    async fn softmax(&self, input: &Tensor, axis: i64) -> Result<Tensor, EngineError> {
        Ok(cpu::softmax(input, axis)?)
    }

    async fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        Ok(cpu::matmul(a, b)?)
    }

    async fn reduce_max(
        &self,
        input: &Tensor,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::reduce_max(input, axes, keepdims)?)
    }

    async fn top_k(
        &self,
        input: &Tensor,
        axis: i64,
        k: usize,
        largest: bool,
    ) -> Result<Vec<Tensor>, EngineError> {
        Ok(cpu::top_k(input, axis, k, largest)?.into())
    }

    async fn gather_elements(
        &self,
        data: &Tensor,
        indices: &Tensor,
        axis: i64,
    ) -> Result<Tensor, EngineError> {
        Ok(cpu::gather_elements(data, indices, axis)?)
    }

    async fn expand(&self, input: &Tensor, shape: &[usize]) -> Result<Tensor, EngineError> {
        Ok(cpu::expand(input, shape)?)
    }
}
