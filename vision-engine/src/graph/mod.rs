//! The detector as the engine runs it: a list of steps over numbered values, built from an ONNX
//! model at load time.
//!
//! Loading ([`Network::from_onnx`]) folds everything that does not depend on the image (shape
//! sub-graphs, constant arithmetic, `Constant`/`Cast`/`Identity`) into constants, checks every
//! remaining op's shapes with the same plan functions the backends use, fuses `x * sigmoid(x)`
//! into the convolution that produces `x`, and records where each value is used last so the
//! executor frees it. What is left runs on any [`Backend`].

mod constant;
mod load;

use crate::{
    Activation, Backend, EngineError, Tensor,
    cpu::{BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
    letterbox::Letterbox,
    postprocess::{self, NmsOptions, OutputLayout, RawDetection},
    tensor::shape_error,
};

pub use load::LoadError;

/// Runs a loaded network on an input: on any backend op by op ([`OpByOp`]), or prepared and
/// resident on the GPU ([`crate::GpuNetwork`]).
#[allow(async_fn_in_trait)] // Implemented in this crate only; the browser's futures are not Send.
pub trait Executor {
    fn name(&self) -> String;

    async fn execute(&self, input: Tensor) -> Result<Vec<Tensor>, EngineError>;

    /// Letterboxes RGBA pixels into the input and runs the network; on the CPU by default,
    /// in the same GPU submission as the network where the executor can.
    async fn execute_rgba(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
    ) -> Result<Vec<Tensor>, EngineError> {
        self.execute(crate::letterbox::to_input(rgba, letterbox))
            .await
    }

    /// Letterbox, network, then decoding and NMS of the first output (laid out as `layout`):
    /// the detections in model-input pixels, and the raw first output where `keep_raw`. By
    /// default on the host after reading every output back; a GPU executor decodes in the same
    /// submission and reads back only the kept boxes (and the raw output only when asked).
    async fn detect_rgba(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
        layout: OutputLayout,
        options: NmsOptions,
        keep_raw: bool,
    ) -> Result<(Vec<RawDetection>, Option<Tensor>), EngineError> {
        let raw = self.execute_rgba(rgba, letterbox).await?.swap_remove(0);
        decode_on_host(raw, layout, options, keep_raw)
    }
}

/// `postprocess::decode_and_nms` of a raw output read back to the host.
pub(crate) fn decode_on_host(
    raw: Tensor,
    layout: OutputLayout,
    options: NmsOptions,
    keep_raw: bool,
) -> Result<(Vec<RawDetection>, Option<Tensor>), EngineError> {
    let detections = postprocess::decode_and_nms(raw.data(), layout, options)
        .map_err(|e| shape_error("Detections", e.to_string()))?;
    Ok((detections, keep_raw.then_some(raw)))
}

/// A network run op by op on a backend, each op on host tensors.
pub struct OpByOp<'a, B> {
    pub network: &'a Network,
    pub backend: &'a B,
}

impl<B: Backend> Executor for OpByOp<'_, B> {
    fn name(&self) -> String {
        self.backend.name()
    }

    async fn execute(&self, input: Tensor) -> Result<Vec<Tensor>, EngineError> {
        self.network.run(self.backend, input).await
    }
}

/// Where a step reads an operand: a value computed at run time, or a constant of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Value(usize),
    Constant(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv {
        weight: usize,
        bias: Option<usize>,
        attrs: Conv2d,
        activation: Option<Activation>,
        /// Whether input 1 is added to the output after the activation: a shortcut's Add that
        /// the loader fused into the convolution that computes its other operand.
        residual: bool,
    },
    MaxPool(MaxPool2d),
    Activation(Activation),
    Binary(BinaryOp),
    Transpose(Vec<usize>),
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        axes: Vec<i64>,
        steps: Vec<i64>,
    },
    Concat(i64),
    Split {
        axis: i64,
        sizes: Vec<usize>,
    },
    Gather {
        axis: i64,
        indices: Vec<i64>,
        indices_shape: Vec<usize>,
    },
    Resize {
        output_shape: Vec<usize>,
        scales: Option<Vec<f32>>,
        transform: CoordinateTransform,
        rounding: NearestRounding,
    },
    Softmax(i64),
    MatMul,
    /// Same values, new shape: no work on any backend.
    Reshape(Vec<usize>),
    ReduceMax {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// Two outputs: values, then indices (exact integers held as f32).
    TopK {
        axis: i64,
        k: usize,
        largest: bool,
    },
    /// Inputs: data, then indices.
    GatherElements(i64),
    Expand(Vec<usize>),
}

/// One op of the network with the ONNX node it came from, for errors and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub node: String,
    pub op: Op,
    pub inputs: Vec<Operand>,
    pub outputs: Vec<usize>,
}

/// A loaded detector, ready to run on any backend.
#[derive(Debug, Clone)]
pub struct Network {
    pub input_name: String,
    pub input_shape: Vec<usize>,
    /// Graph outputs in order, with their shapes.
    pub outputs: Vec<(String, Vec<usize>)>,
    pub(crate) output_operands: Vec<Operand>,
    pub class_names: Option<Vec<String>>,
    pub steps: Vec<Step>,
    pub(crate) constants: Vec<Tensor>,
    /// For each value, the index of the last step that reads it (outputs are never freed).
    last_use: Vec<Option<usize>>,
    /// [`Network::flops`].
    flops: u64,
    /// Value 0 is the network's input.
    pub(crate) value_shapes: Vec<Vec<usize>>,
}

impl Network {
    /// Runs the network on `input` (shape `input_shape`) and returns the graph outputs.
    pub async fn run(
        &self,
        backend: &impl Backend,
        input: Tensor,
    ) -> Result<Vec<Tensor>, EngineError> {
        self.run_steps(
            input,
            async |_, step, inputs| execute(backend, &step.op, &self.constants, inputs).await,
            drop,
        )
        .await
    }

    /// Runs the steps in order on `input`: `run_step` computes step `index`'s outputs from its
    /// inputs, and `free` takes each value after the last step that reads it.
    pub(crate) async fn run_steps(
        &self,
        input: Tensor,
        mut run_step: impl AsyncFnMut(usize, &Step, &[&Tensor]) -> Result<Vec<Tensor>, EngineError>,
        mut free: impl FnMut(Tensor),
    ) -> Result<Vec<Tensor>, EngineError> {
        if input.shape() != self.input_shape.as_slice() {
            return Err(crate::tensor::shape_error(
                "Network",
                format!(
                    "input {:?} must have shape {:?}",
                    input.shape(),
                    self.input_shape
                ),
            )
            .into());
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.value_shapes.len()];
        values[0] = Some(input);
        for (index, step) in self.steps.iter().enumerate() {
            let results = {
                let operand = |o: &Operand| -> &Tensor {
                    match *o {
                        Operand::Value(v) => values[v]
                            .as_ref()
                            .expect("computed before use, freed after last use"),
                        Operand::Constant(c) => &self.constants[c],
                    }
                };
                let inputs: Vec<&Tensor> = step.inputs.iter().map(operand).collect();
                run_step(index, step, &inputs).await?
            };
            for (&slot, tensor) in step.outputs.iter().zip(results) {
                values[slot] = Some(tensor);
            }
            for operand in &step.inputs {
                if let Operand::Value(v) = *operand
                    && self.last_use[v] == Some(index)
                    && let Some(value) = values[v].take()
                {
                    free(value);
                }
            }
        }
        self.output_operands
            .iter()
            .map(|o| match *o {
                Operand::Value(v) => Ok(values[v].clone().expect("outputs are kept")),
                Operand::Constant(c) => Ok(self.constants[c].clone()),
            })
            .collect()
    }

    /// Floating-point operations (a multiply-add counts two) of the model's convolutions and
    /// matrix products, the bulk of a detector's work: the numerator of its compute floor. Counted
    /// as exported, before the loader merged parallel branches (whose zero padding adds products
    /// that are not the model's).
    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// How many steps of each op kind the network runs (for reports and tests of the passes).
    pub fn op_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for step in &self.steps {
            let name = match &step.op {
                Op::Conv {
                    activation,
                    residual,
                    ..
                } => match (activation.is_some(), residual) {
                    (true, true) => "Conv+Activation+Add",
                    (true, false) => "Conv+Activation",
                    (false, true) => "Conv+Add",
                    (false, false) => "Conv",
                },
                Op::MaxPool(_) => "MaxPool",
                Op::Activation(_) => "Activation",
                Op::Binary(_) => "Binary",
                Op::Transpose(_) => "Transpose",
                Op::Slice { .. } => "Slice",
                Op::Concat(_) => "Concat",
                Op::Split { .. } => "Split",
                Op::Gather { .. } => "Gather",
                Op::Resize { .. } => "Resize",
                Op::Softmax(_) => "Softmax",
                Op::MatMul => "MatMul",
                Op::Reshape(_) => "Reshape",
                Op::ReduceMax { .. } => "ReduceMax",
                Op::TopK { .. } => "TopK",
                Op::GatherElements(_) => "GatherElements",
                Op::Expand(_) => "Expand",
            };
            *counts.entry(name).or_default() += 1;
        }
        counts
    }
}

/// [`Network::flops`] of `steps`.
pub(crate) fn conv_and_matmul_flops(
    steps: &[Step],
    constants: &[Tensor],
    value_shapes: &[Vec<usize>],
) -> u64 {
    let shape = |o: &Operand| match *o {
        Operand::Value(v) => value_shapes[v].as_slice(),
        Operand::Constant(c) => constants[c].shape(),
    };
    steps
        .iter()
        .map(|step| {
            let out: u64 = value_shapes[step.outputs[0]]
                .iter()
                .map(|&d| d as u64)
                .product();
            match &step.op {
                // Each output value sums C/group x kH x kW products.
                Op::Conv { weight, .. } => {
                    let w = constants[*weight].shape();
                    2 * out * (w[1] * w[2] * w[3]) as u64
                }
                Op::MatMul => {
                    let a = shape(&step.inputs[0]);
                    2 * out * a[a.len() - 1] as u64
                }
                _ => 0,
            }
        })
        .sum()
}

/// Runs one op on `backend`; the loader also uses it, with the CPU backend, to fold constants.
pub(crate) async fn execute(
    backend: &impl Backend,
    op: &Op,
    constants: &[Tensor],
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, EngineError> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Conv {
            weight,
            bias,
            attrs,
            activation,
            residual,
        } => one(backend
            .conv2d(
                inputs[0],
                &constants[*weight],
                bias.map(|b| &constants[b]),
                attrs,
                *activation,
                residual.then(|| inputs[1]),
            )
            .await?),
        Op::MaxPool(attrs) => one(backend.max_pool2d(inputs[0], attrs).await?),
        Op::Activation(kind) => one(backend.activation(*kind, inputs[0]).await?),
        Op::Binary(op) => one(backend.binary(*op, inputs[0], inputs[1]).await?),
        Op::Transpose(perm) => one(backend.transpose(inputs[0], perm).await?),
        Op::Slice {
            starts,
            ends,
            axes,
            steps,
        } => one(backend
            .slice(inputs[0], starts, ends, Some(axes), Some(steps))
            .await?),
        Op::Concat(axis) => one(backend.concat(inputs, *axis).await?),
        Op::Split { axis, sizes } => backend.split(inputs[0], *axis, sizes).await,
        Op::Gather {
            axis,
            indices,
            indices_shape,
        } => one(backend
            .gather(inputs[0], *axis, indices, indices_shape)
            .await?),
        Op::Resize {
            output_shape,
            scales,
            transform,
            rounding,
        } => one(backend
            .resize_nearest(
                inputs[0],
                output_shape,
                scales.as_deref(),
                *transform,
                *rounding,
            )
            .await?),
        Op::Softmax(axis) => one(backend.softmax(inputs[0], *axis).await?),
        Op::MatMul => one(backend.matmul(inputs[0], inputs[1]).await?),
        Op::Reshape(shape) => one(inputs[0].clone().reshaped(shape.clone())?),
        Op::ReduceMax { axes, keepdims } => {
            one(backend.reduce_max(inputs[0], axes, *keepdims).await?)
        }
        Op::TopK { axis, k, largest } => backend.top_k(inputs[0], *axis, *k, *largest).await,
        Op::GatherElements(axis) => {
            one(backend.gather_elements(inputs[0], inputs[1], *axis).await?)
        }
        Op::Expand(shape) => one(backend.expand(inputs[0], shape).await?),
    }
}
