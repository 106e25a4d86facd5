//! ONNX model → [`Network`]: folding, shape inference, fusion, liveness.

use super::{
    Network, Op, Operand, Step,
    constant::{Ints, Known, from_onnx, int_binary, int_elementwise, move_ints},
};
use crate::{
    Activation, CpuBackend, ShapeError, Tensor,
    cpu::{self, BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
    onnx::{self, AttributeValue, DataType, Dim, Node},
};
use std::collections::HashMap;

/// Why a model cannot run, naming the op, node or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error("the model's input: {0}")]
    Input(String),
    #[error("unsupported operator {op_type} (node \"{node}\"){detail}")]
    UnsupportedOp {
        op_type: String,
        node: String,
        detail: String,
    },
    #[error("node \"{node}\" ({op_type}): {reason}")]
    Node {
        node: String,
        op_type: String,
        reason: String,
    },
    #[error("the model needs opset {found} of ai.onnx; the engine reads opset 11 and newer")]
    Opset { found: i64 },
}

const MIN_OPSET: i64 = 11;
/// Longest `Range` folded at load; longer ones are not shape arithmetic.
const MAX_RANGE: usize = 1 << 20;

struct Loader<'m> {
    opset: i64,
    known: HashMap<&'m str, Known>,
    constants: Vec<Tensor>,
    steps: Vec<Step>,
    value_shapes: Vec<Vec<usize>>,
}

/// Errors inside one node, before the node's name is attached.
enum Fault {
    Unsupported(String),
    Invalid(String),
}

impl From<ShapeError> for Fault {
    fn from(e: ShapeError) -> Self {
        Fault::Invalid(e.to_string())
    }
}

type NodeResult<T> = Result<T, Fault>;

fn invalid<T>(reason: impl Into<String>) -> NodeResult<T> {
    Err(Fault::Invalid(reason.into()))
}

fn unsupported<T>(detail: impl Into<String>) -> NodeResult<T> {
    Err(Fault::Unsupported(detail.into()))
}

fn int_attr(node: &Node, name: &str, default: i64) -> NodeResult<i64> {
    match node.attribute(name) {
        None => Ok(default),
        Some(AttributeValue::Int(v)) => Ok(*v),
        Some(other) => invalid(format!("attribute {name} must be an int, got {other:?}")),
    }
}

fn ints_attr(node: &Node, name: &str) -> NodeResult<Option<Vec<i64>>> {
    match node.attribute(name) {
        None => Ok(None),
        Some(AttributeValue::Ints(v)) => Ok(Some(v.clone())),
        Some(other) => invalid(format!("attribute {name} must be ints, got {other:?}")),
    }
}

fn string_attr(node: &Node, name: &str, default: &str) -> NodeResult<String> {
    match node.attribute(name) {
        None => Ok(default.to_string()),
        Some(AttributeValue::String(v)) => Ok(String::from_utf8_lossy(v).into_owned()),
        Some(other) => invalid(format!("attribute {name} must be a string, got {other:?}")),
    }
}

fn sizes(name: &str, values: &[i64]) -> NodeResult<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            usize::try_from(v)
                .or_else(|_| invalid(format!("{name} {values:?} must not be negative")))
        })
        .collect()
}

fn pair(name: &str, values: Option<Vec<i64>>, default: usize) -> NodeResult<[usize; 2]> {
    match values {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 => Ok(sizes(name, &v)?.try_into().expect("two values")),
        Some(v) => unsupported(format!(": {name} {v:?} (only 2-D images are supported)")),
    }
}

fn pads4(node: &Node) -> NodeResult<[usize; 4]> {
    let auto_pad = string_attr(node, "auto_pad", "NOTSET")?;
    if auto_pad != "NOTSET" && auto_pad != "VALID" {
        return unsupported(format!(": auto_pad {auto_pad} (export with explicit pads)"));
    }
    match ints_attr(node, "pads")? {
        None => Ok([0; 4]),
        // ONNX order is [y_begin, x_begin, y_end, x_end]: top, left, bottom, right.
        Some(p) if p.len() == 4 => Ok(sizes("pads", &p)?.try_into().expect("four values")),
        Some(p) => unsupported(format!(": pads {p:?} (only 2-D images are supported)")),
    }
}

fn data_type_is_float(t: DataType) -> bool {
    matches!(
        t,
        DataType::Float | DataType::Float16 | DataType::Double | DataType::BFloat16
    )
}

impl<'m> Loader<'m> {
    fn input(&self, node: &'m Node, i: usize) -> NodeResult<Option<&Known>> {
        match node.inputs.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => match self.known.get(name) {
                Some(k) => Ok(Some(k)),
                None => invalid(format!(
                    "input \"{name}\" is not produced by any earlier node"
                )),
            },
        }
    }

    fn required(&self, node: &'m Node, i: usize) -> NodeResult<&Known> {
        self.input(node, i)?
            .map_or_else(|| invalid(format!("input {i} is missing")), Ok)
    }

    fn ints_input(&self, node: &'m Node, i: usize) -> NodeResult<Option<Vec<i64>>> {
        match self.input(node, i)? {
            None => Ok(None),
            Some(Known::Int(v)) => Ok(Some(v.data.clone())),
            Some(Known::Float(t)) if t.is_empty() => Ok(None),
            Some(_) => unsupported(format!(": input {i} must be a constant integer tensor")),
        }
    }

    fn floats_input(&self, node: &'m Node, i: usize) -> NodeResult<Option<Vec<f32>>> {
        match self.input(node, i)? {
            Some(Known::Float(t)) if !t.is_empty() => Ok(Some(t.data().to_vec())),
            Some(Known::Value { .. }) => unsupported(format!(": input {i} must be a constant")),
            _ => Ok(None),
        }
    }

    fn constant(&mut self, tensor: Tensor) -> usize {
        self.constants.push(tensor);
        self.constants.len() - 1
    }

    fn operand(&mut self, known: &Known) -> Operand {
        match known {
            Known::Value { slot, .. } => Operand::Value(*slot),
            Known::Float(t) => Operand::Constant(self.constant(t.clone())),
            Known::Int(i) => Operand::Constant(self.constant(i.to_floats())),
        }
    }

    fn new_value(&mut self, shape: Vec<usize>) -> usize {
        self.value_shapes.push(shape);
        self.value_shapes.len() - 1
    }

    fn set(&mut self, node: &'m Node, results: Vec<Known>) -> NodeResult<()> {
        if results.len() < node.outputs.iter().filter(|o| !o.is_empty()).count() {
            return unsupported(format!(
                ": {} outputs (the engine computes {})",
                node.outputs.len(),
                results.len()
            ));
        }
        for (name, value) in node.outputs.iter().zip(results) {
            if !name.is_empty() {
                self.known.insert(name.as_str(), value);
            }
        }
        Ok(())
    }

    /// Turns one ONNX node into constants (folded now) or a step (run later).
    fn node(&mut self, node: &'m Node) -> NodeResult<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return unsupported(format!(" from domain \"{}\"", node.domain));
        }
        let op_type = node.op_type.as_str();
        match op_type {
            "Constant" => {
                let value = match node.attributes.first().map(|a| (a.name.as_str(), &a.value)) {
                    Some(("value", AttributeValue::Tensor(t))) => {
                        from_onnx(t).map_err(Fault::Invalid)?
                    }
                    Some(("value_float", AttributeValue::Float(f))) => {
                        Known::Float(Tensor::new(vec![], vec![*f])?)
                    }
                    Some(("value_floats", AttributeValue::Floats(f))) => {
                        Known::Float(Tensor::new(vec![f.len()], f.clone())?)
                    }
                    Some(("value_int", AttributeValue::Int(i))) => Known::Int(Ints {
                        shape: vec![],
                        data: vec![*i],
                    }),
                    Some(("value_ints", AttributeValue::Ints(i))) => Known::Int(Ints {
                        shape: vec![i.len()],
                        data: i.clone(),
                    }),
                    other => return unsupported(format!(": value {other:?}")),
                };
                return self.set(node, vec![value]);
            }
            "Identity" | "Dropout" => {
                let value = self.required(node, 0)?.clone();
                return self.set(node, vec![value]);
            }
            "Cast" => return self.cast(node),
            "Shape" => {
                let shape = self.required(node, 0)?.shape().to_vec();
                let rank = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let (start, end) = (
                    clamp(int_attr(node, "start", 0)?),
                    clamp(int_attr(node, "end", rank)?),
                );
                let data: Vec<i64> = shape[start..end.max(start)]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                return self.set(
                    node,
                    vec![Known::Int(Ints {
                        shape: vec![data.len()],
                        data,
                    })],
                );
            }
            "Unsqueeze" | "Squeeze" | "Flatten" | "Reshape" => return self.reshape(node),
            _ => {}
        }
        let inputs: Vec<Known> = (0..node.inputs.len())
            .filter_map(|i| self.input(node, i).transpose())
            .collect::<NodeResult<Vec<&Known>>>()?
            .into_iter()
            .cloned()
            .collect();
        if !inputs.is_empty() && inputs.iter().all(|k| matches!(k, Known::Int(_))) {
            return self.fold_ints(node, &inputs);
        }
        let (op, data_inputs) = self.op(node)?;
        let operands: Vec<&Known> = data_inputs
            .iter()
            .map(|&i| self.required(node, i))
            .collect::<NodeResult<_>>()?;
        let shapes: Vec<Vec<usize>> = operands.iter().map(|k| k.shape().to_vec()).collect();
        let operands: Vec<Known> = operands.into_iter().cloned().collect();
        let input_ints: Vec<bool> = operands.iter().map(Known::holds_ints).collect();
        if operands.iter().all(Known::is_constant) {
            // Nothing here depends on the image: compute it once, now, on the CPU.
            let constants: Vec<Tensor> = operands.iter().map(|k| self.as_float(k)).collect();
            let refs: Vec<&Tensor> = constants.iter().collect();
            let results = ready(super::execute(&CpuBackend, &op, &self.constants, &refs))
                .map_err(|e| Fault::Invalid(e.to_string()))?;
            let results = results
                .into_iter()
                .enumerate()
                .map(|(o, t)| {
                    if output_holds_ints(&op, o, &input_ints) {
                        Known::Int(Ints::truncated(&t))
                    } else {
                        Known::Float(t)
                    }
                })
                .collect();
            return self.set(node, results);
        }
        let output_shapes = output_shapes(&op, &shapes, &self.constants)?;
        let inputs = operands.iter().map(|k| self.operand(k)).collect();
        let outputs: Vec<usize> = output_shapes
            .iter()
            .map(|s| self.new_value(s.clone()))
            .collect();
        self.steps.push(Step {
            node: node.name.clone(),
            op,
            inputs,
            outputs: outputs.clone(),
        });
        let results = outputs
            .iter()
            .zip(output_shapes)
            .enumerate()
            .map(|(o, (&slot, shape))| Known::Value {
                slot,
                shape,
                ints: output_holds_ints(&self.steps[self.steps.len() - 1].op, o, &input_ints),
            })
            .collect();
        self.set(node, results)
    }

    fn as_float(&self, known: &Known) -> Tensor {
        match known {
            Known::Float(t) => t.clone(),
            Known::Int(i) => i.to_floats(),
            Known::Value { .. } => unreachable!("only constants are folded"),
        }
    }

    fn cast(&mut self, node: &'m Node) -> NodeResult<()> {
        let to = DataType::from_code(int_attr(node, "to", 1)? as i32);
        let value = match (self.required(node, 0)?.clone(), data_type_is_float(to)) {
            // Run-time integers (TopK's indices) stay integers, held exactly as f32.
            (v @ Known::Value { ints: true, .. }, false) => v,
            (Known::Value { .. }, false) => {
                return unsupported(format!(
                    ": to {to:?} on image data (the engine computes in f32)"
                ));
            }
            // An integer value becomes a float one: the f32 values are the same.
            (Known::Value { slot, shape, .. }, true) => Known::Value {
                slot,
                shape,
                ints: false,
            },
            // Run-time values are f32 whatever the model's float type: fp16 models compute in f32.
            (v @ Known::Float(_), true) => v,
            (Known::Int(i), true) => Known::Float(i.to_floats()),
            (Known::Int(i), false) => Known::Int(i),
            (Known::Float(t), false) => Known::Int(Ints::truncated(&t)),
        };
        self.set(node, vec![value])
    }

    /// Unsqueeze, Squeeze, Flatten and Reshape only change the shape.
    fn reshape(&mut self, node: &'m Node) -> NodeResult<()> {
        let input = self.required(node, 0)?.clone();
        let shape = input.shape().to_vec();
        let rank_out = |extra: usize| (shape.len() + extra) as i64;
        let axes = |loader: &Self, rank: i64| -> NodeResult<Vec<usize>> {
            let axes = match ints_attr(node, "axes")? {
                Some(a) => Some(a),
                None => loader.ints_input(node, 1)?,
            };
            let mut axes = axes
                .unwrap_or_default()
                .iter()
                .map(|&a| crate::normalize_axis("axes", a, rank as usize).map_err(Fault::from))
                .collect::<NodeResult<Vec<_>>>()?;
            axes.sort_unstable();
            Ok(axes)
        };
        let target: Vec<usize> = match node.op_type.as_str() {
            "Unsqueeze" => {
                let count = match ints_attr(node, "axes")? {
                    Some(a) => a.len(),
                    None => self.ints_input(node, 1)?.map_or(0, |a| a.len()),
                };
                let axes = axes(self, rank_out(count))?;
                let mut out = shape.clone();
                for &a in &axes {
                    out.insert(a.min(out.len()), 1);
                }
                out
            }
            "Squeeze" => {
                let axes = axes(self, rank_out(0))?;
                shape
                    .iter()
                    .enumerate()
                    .filter(|&(i, &d)| {
                        !(if axes.is_empty() {
                            d == 1
                        } else {
                            axes.contains(&i)
                        })
                    })
                    .map(|(_, &d)| d)
                    .collect()
            }
            "Flatten" => {
                let axis =
                    crate::normalize_axis("Flatten", int_attr(node, "axis", 1)?, shape.len() + 1)
                        .unwrap_or(1);
                vec![
                    shape[..axis].iter().product(),
                    shape[axis..].iter().product(),
                ]
            }
            _ => {
                let Some(spec) = self.ints_input(node, 1)? else {
                    return unsupported(": the target shape must be a constant");
                };
                cpu::reshape_target(&shape, &spec, int_attr(node, "allowzero", 0)? != 0)?
            }
        };
        let value = match input {
            Known::Float(t) => Known::Float(t.reshaped(target)?),
            Known::Int(i) if i.data.len() == target.iter().product::<usize>() => Known::Int(Ints {
                shape: target,
                data: i.data,
            }),
            Known::Int(_) => return invalid(format!("cannot reshape {shape:?} to {target:?}")),
            Known::Value { slot, ints, .. } => {
                let out = self.new_value(target.clone());
                self.steps.push(Step {
                    node: node.name.clone(),
                    op: Op::Reshape(target.clone()),
                    inputs: vec![Operand::Value(slot)],
                    outputs: vec![out],
                });
                Known::Value {
                    slot: out,
                    shape: target,
                    ints,
                }
            }
        };
        self.set(node, vec![value])
    }

    /// Integer ops of shape sub-graphs, computed now.
    fn fold_ints(&mut self, node: &'m Node, inputs: &[Known]) -> NodeResult<()> {
        let ints: Vec<Ints> = inputs
            .iter()
            .map(|k| match k {
                Known::Int(i) => i.clone(),
                _ => unreachable!("called only when every input is an integer constant"),
            })
            .collect();
        let binary = |op| int_binary(op, &ints[0], &ints[1]).map_err(Fault::from);
        let result = match node.op_type.as_str() {
            "Add" => binary(BinaryOp::Add)?,
            "Sub" => binary(BinaryOp::Sub)?,
            "Mul" => binary(BinaryOp::Mul)?,
            "Div" => binary(BinaryOp::Div)?,
            "Mod" => binary(mod_op(node)?)?,
            "Equal" => int_elementwise("Equal", &[&ints[0], &ints[1]], |v| {
                Ok(i64::from(v[0] == v[1]))
            })?,
            "Where" => int_elementwise("Where", &[&ints[0], &ints[1], &ints[2]], |v| {
                Ok(if v[0] != 0 { v[1] } else { v[2] })
            })?,
            "Expand" => {
                let shape = sizes("shape", &ints[1].data)?;
                move_ints(&[&ints[0]], |t| cpu::expand(t[0], &shape))?
            }
            "Concat" => {
                let axis = int_attr(node, "axis", 0)?;
                move_ints(&ints.iter().collect::<Vec<_>>(), |t| cpu::concat(t, axis))?
            }
            "Gather" => {
                let axis = int_attr(node, "axis", 0)?;
                let (indices, shape) = (&ints[1].data, &ints[1].shape);
                move_ints(&[&ints[0]], |t| cpu::gather(t[0], axis, indices, shape))?
            }
            "Slice" => {
                let (starts, ends) = (&ints[1].data, &ints[2].data);
                let axes = ints.get(3).map(|a| a.data.clone());
                let steps = ints.get(4).map(|s| s.data.clone());
                move_ints(&[&ints[0]], |t| {
                    cpu::slice(t[0], starts, ends, axes.as_deref(), steps.as_deref())
                })?
            }
            "Transpose" => {
                let perm = sizes("perm", &ints_attr(node, "perm")?.unwrap_or_default())?;
                move_ints(&[&ints[0]], |t| cpu::transpose(t[0], &perm))?
            }
            "ConstantOfShape" => {
                let shape = sizes("shape", &ints[0].data)?;
                let len = shape.iter().product();
                match node.attribute("value") {
                    Some(AttributeValue::Tensor(t)) => {
                        match from_onnx(t).map_err(Fault::Invalid)? {
                            Known::Int(v) if v.data.len() == 1 => Ints {
                                shape,
                                data: vec![v.data[0]; len],
                            },
                            Known::Float(v) if v.len() == 1 => {
                                return self.set(
                                    node,
                                    vec![Known::Float(Tensor::new(shape, vec![v.data()[0]; len])?)],
                                );
                            }
                            _ => return invalid("value must hold one element"),
                        }
                    }
                    None => return self.set(node, vec![Known::Float(Tensor::zeros(shape))]),
                    Some(other) => {
                        return invalid(format!("value must be a tensor, got {other:?}"));
                    }
                }
            }
            "Range" => {
                let (start, limit, delta) = (ints[0].data[0], ints[1].data[0], ints[2].data[0]);
                if delta == 0 {
                    return invalid("delta is 0");
                }
                let count = (limit - start + delta - delta.signum()) / delta;
                let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
                if count > MAX_RANGE {
                    return invalid(format!("a range of {count} values is too long to fold"));
                }
                let data: Vec<i64> = (0..count as i64).map(|i| start + i * delta).collect();
                Ints {
                    shape: vec![data.len()],
                    data,
                }
            }
            other => return unsupported(format!(" on constant integer inputs ({other})")),
        };
        self.set(node, vec![Known::Int(result)])
    }

    /// The arithmetic of Add/Sub/Mul/Div/Mod on run-time values: f32, or integer Div/Mod on
    /// run-time integers by constant, non-zero divisors (which keeps them exact; see
    /// `cpu::select`).
    fn arithmetic(&self, node: &'m Node) -> NodeResult<BinaryOp> {
        let (a, b) = (self.required(node, 0)?, self.required(node, 1)?);
        let op = match (node.op_type.as_str(), a.holds_ints() || b.holds_ints()) {
            ("Add", false) => return Ok(BinaryOp::Add),
            ("Sub", false) => return Ok(BinaryOp::Sub),
            ("Mul", false) => return Ok(BinaryOp::Mul),
            ("Div", false) => return Ok(BinaryOp::Div),
            ("Div", true) => BinaryOp::IntDiv,
            ("Mod", true) => mod_op(node)?,
            ("Mod", false) => return unsupported(": on float values"),
            (other, _) => {
                return unsupported(format!(
                    ": {other} on run-time integers (the engine holds them as f32, kept exact \
                     only by integer Div and Mod)"
                ));
            }
        };
        match b {
            Known::Int(divisor) if a.holds_ints() => {
                cpu::check_divisor(op, &divisor.to_floats())?;
                Ok(op)
            }
            _ => unsupported(": integer division needs a constant integer divisor"),
        }
    }

    /// The op a compute node runs, and which of its ONNX inputs are its data operands.
    fn op(&mut self, node: &'m Node) -> NodeResult<(Op, Vec<usize>)> {
        let rank = |loader: &Self| loader.required(node, 0).map(|k| k.shape().len());
        Ok(match node.op_type.as_str() {
            "Conv" => {
                let attrs = Conv2d {
                    strides: pair("strides", ints_attr(node, "strides")?, 1)?,
                    pads: pads4(node)?,
                    dilations: pair("dilations", ints_attr(node, "dilations")?, 1)?,
                    group: sizes("group", &[int_attr(node, "group", 1)?])?[0],
                };
                let Known::Float(w) = self.required(node, 1)?.clone() else {
                    return unsupported(": the weight must be a constant float tensor");
                };
                let bias = match self.input(node, 2)?.cloned() {
                    None => None,
                    Some(Known::Float(b)) => Some(self.constant(b)),
                    Some(_) => return unsupported(": the bias must be a constant float tensor"),
                };
                let weight = self.constant(w);
                (
                    Op::Conv {
                        weight,
                        bias,
                        attrs,
                        activation: None,
                        residual: false,
                    },
                    vec![0],
                )
            }
            "MaxPool" => {
                if int_attr(node, "ceil_mode", 0)? != 0 || node.outputs.len() > 1 {
                    return unsupported(": ceil_mode 1 or the Indices output");
                }
                let Some(kernel) = ints_attr(node, "kernel_shape")? else {
                    return invalid("kernel_shape is missing");
                };
                let attrs = MaxPool2d {
                    kernel: pair("kernel_shape", Some(kernel), 1)?,
                    strides: pair("strides", ints_attr(node, "strides")?, 1)?,
                    pads: pads4(node)?,
                    dilations: pair("dilations", ints_attr(node, "dilations")?, 1)?,
                };
                (Op::MaxPool(attrs), vec![0])
            }
            "Sigmoid" => (Op::Activation(Activation::Sigmoid), vec![0]),
            "Add" | "Sub" | "Mul" | "Div" | "Mod" => {
                (Op::Binary(self.arithmetic(node)?), vec![0, 1])
            }
            "ReduceMax" => {
                let axes = match (ints_attr(node, "axes")?, self.ints_input(node, 1)?) {
                    (Some(a), _) | (None, Some(a)) => a,
                    (None, None) => Vec::new(),
                };
                if axes.is_empty() && int_attr(node, "noop_with_empty_axes", 0)? != 0 {
                    return unsupported(": noop_with_empty_axes 1 without axes");
                }
                let keepdims = int_attr(node, "keepdims", 1)? != 0;
                (Op::ReduceMax { axes, keepdims }, vec![0])
            }
            "TopK" => {
                if int_attr(node, "sorted", 1)? != 1 {
                    return unsupported(": sorted 0 (the engine returns sorted results)");
                }
                let k = match self.ints_input(node, 1)?.as_deref() {
                    Some(&[k]) => sizes("k", &[k])?[0],
                    _ => return unsupported(": k must be a constant of one value"),
                };
                let largest = match int_attr(node, "largest", 1)? {
                    0 => false,
                    1 => true,
                    other => return invalid(format!("largest {other} is neither 0 nor 1")),
                };
                let axis = int_attr(node, "axis", -1)?;
                (Op::TopK { axis, k, largest }, vec![0])
            }
            "GatherElements" => {
                if !self.required(node, 1)?.holds_ints() {
                    return invalid("indices must be integers");
                }
                (Op::GatherElements(int_attr(node, "axis", 0)?), vec![0, 1])
            }
            "Expand" => {
                let Some(shape) = self.ints_input(node, 1)? else {
                    return unsupported(": the shape must be a constant");
                };
                (Op::Expand(sizes("shape", &shape)?), vec![0])
            }
            "MatMul" => (Op::MatMul, vec![0, 1]),
            "Transpose" => (
                Op::Transpose(sizes(
                    "perm",
                    &ints_attr(node, "perm")?.unwrap_or_default(),
                )?),
                vec![0],
            ),
            "Concat" => (
                Op::Concat(int_attr(node, "axis", 0)?),
                (0..node.inputs.len()).collect(),
            ),
            "Softmax" => {
                let r = rank(self)? as i64;
                let axis = int_attr(node, "axis", if self.opset >= 13 { -1 } else { 1 })?;
                // Before opset 13 Softmax flattened to 2-D around `axis`: the same only on the last axis.
                if self.opset < 13 && axis != -1 && axis != r - 1 {
                    return unsupported(format!(
                        ": opset {} Softmax on axis {axis} of rank {r}",
                        self.opset
                    ));
                }
                (Op::Softmax(axis), vec![0])
            }
            "Split" => {
                let axis = int_attr(node, "axis", 0)?;
                let shape = self.required(node, 0)?.shape().to_vec();
                let len = shape[crate::normalize_axis("Split", axis, shape.len())?];
                let sizes = match (ints_attr(node, "split")?, self.ints_input(node, 1)?) {
                    (Some(s), _) | (None, Some(s)) => sizes("split", &s)?,
                    (None, None) => {
                        let parts = node.outputs.len().max(1);
                        let each = len.div_ceil(parts);
                        (0..parts)
                            .map(|i| each.min(len.saturating_sub(i * each)))
                            .collect()
                    }
                };
                (Op::Split { axis, sizes }, vec![0])
            }
            "Slice" => {
                let (Some(starts), Some(ends)) =
                    (self.ints_input(node, 1)?, self.ints_input(node, 2)?)
                else {
                    return unsupported(": starts and ends must be constants");
                };
                let axes = self
                    .ints_input(node, 3)?
                    .unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = self
                    .ints_input(node, 4)?
                    .unwrap_or_else(|| vec![1; starts.len()]);
                (
                    Op::Slice {
                        starts,
                        ends,
                        axes,
                        steps,
                    },
                    vec![0],
                )
            }
            "Gather" => {
                let Some(Known::Int(indices)) = self.input(node, 1)?.cloned() else {
                    return unsupported(": indices must be a constant");
                };
                (
                    Op::Gather {
                        axis: int_attr(node, "axis", 0)?,
                        indices: indices.data,
                        indices_shape: indices.shape,
                    },
                    vec![0],
                )
            }
            "Resize" => {
                let mode = string_attr(node, "mode", "nearest")?;
                if mode != "nearest" {
                    return unsupported(format!(": mode {mode} (the engine resizes with nearest)"));
                }
                if int_attr(node, "antialias", 0)? != 0
                    || int_attr(node, "exclude_outside", 0)? != 0
                    || ints_attr(node, "axes")?.is_some()
                {
                    return unsupported(": antialias, exclude_outside or axes");
                }
                let transform =
                    match string_attr(node, "coordinate_transformation_mode", "half_pixel")?
                        .as_str()
                    {
                        "asymmetric" => CoordinateTransform::Asymmetric,
                        "half_pixel" => CoordinateTransform::HalfPixel,
                        "pytorch_half_pixel" => CoordinateTransform::PytorchHalfPixel,
                        "align_corners" => CoordinateTransform::AlignCorners,
                        other => {
                            return unsupported(format!(
                                ": coordinate_transformation_mode {other}"
                            ));
                        }
                    };
                let rounding =
                    match string_attr(node, "nearest_mode", "round_prefer_floor")?.as_str() {
                        "floor" => NearestRounding::Floor,
                        "ceil" => NearestRounding::Ceil,
                        "round_prefer_floor" => NearestRounding::RoundPreferFloor,
                        "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
                        other => return unsupported(format!(": nearest_mode {other}")),
                    };
                let input_shape = self.required(node, 0)?.shape().to_vec();
                let (output_shape, scales) =
                    match (self.ints_input(node, 3)?, self.floats_input(node, 2)?) {
                        (Some(sizes_in), _) => (sizes("sizes", &sizes_in)?, None),
                        (None, Some(scales)) if scales.len() == input_shape.len() => {
                            let shape = input_shape
                                .iter()
                                .zip(&scales)
                                .map(|(&d, &s)| (d as f64 * f64::from(s)).floor() as usize)
                                .collect();
                            (shape, Some(scales))
                        }
                        _ => return invalid("needs constant scales or sizes of the input's rank"),
                    };
                (
                    Op::Resize {
                        output_shape,
                        scales,
                        transform,
                        rounding,
                    },
                    vec![0],
                )
            }
            _ => return unsupported(String::new()),
        })
    }
}

/// `Mod`'s integer op: the remainder takes the divisor's sign (`fmod` 0) or the dividend's.
fn mod_op(node: &Node) -> NodeResult<BinaryOp> {
    match int_attr(node, "fmod", 0)? {
        0 => Ok(BinaryOp::Mod),
        1 => Ok(BinaryOp::Fmod),
        other => invalid(format!("fmod {other} is neither 0 nor 1")),
    }
}

/// Whether output `output` of `op` holds integers, given which inputs do: TopK's indices and
/// integer Div/Mod make them, ops that move values keep what their data input holds.
fn output_holds_ints(op: &Op, output: usize, inputs: &[bool]) -> bool {
    match op {
        Op::TopK { .. } => output == 1 || inputs[0],
        Op::Binary(b) => b.is_integer(),
        Op::Transpose(_)
        | Op::Slice { .. }
        | Op::Concat(_)
        | Op::Split { .. }
        | Op::Gather { .. }
        | Op::Reshape(_)
        | Op::ReduceMax { .. }
        | Op::GatherElements(_)
        | Op::Expand(_) => inputs[0],
        Op::Conv { .. }
        | Op::MaxPool(_)
        | Op::Activation(_)
        | Op::Resize { .. }
        | Op::Softmax(_)
        | Op::MatMul => false,
    }
}

/// The shapes a step produces, checked by the same plans the backends run.
fn output_shapes(
    op: &Op,
    inputs: &[Vec<usize>],
    constants: &[Tensor],
) -> Result<Vec<Vec<usize>>, ShapeError> {
    let one = |s: Vec<usize>| Ok(vec![s]);
    match op {
        Op::Conv {
            weight,
            bias,
            attrs,
            ..
        } => one(cpu::conv2d_output_shape(
            &inputs[0],
            constants[*weight].shape(),
            bias.map(|b| constants[b].shape()),
            attrs,
        )?
        .to_vec()),
        Op::MaxPool(attrs) => one(cpu::max_pool2d_output_shape(&inputs[0], attrs)?.to_vec()),
        Op::Activation(_) | Op::Softmax(_) => one(inputs[0].clone()),
        Op::Binary(_) => one(cpu::broadcast_shape("Binary", &inputs[0], &inputs[1])?),
        Op::Transpose(perm) => one(cpu::transpose_plan(&inputs[0], perm)?.0),
        Op::Slice {
            starts,
            ends,
            axes,
            steps,
        } => one(
            cpu::slice_plan(&inputs[0], starts, ends, Some(axes), Some(steps))?
                .iter()
                .map(|p| p.2)
                .collect(),
        ),
        Op::Concat(axis) => {
            one(cpu::concat_shape(&inputs.iter().map(Vec::as_slice).collect::<Vec<_>>(), *axis)?.1)
        }
        Op::Split { axis, sizes } => Ok(cpu::split_plan(&inputs[0], *axis, sizes)?
            .iter()
            .map(|plan| plan.iter().map(|p| p.2).collect())
            .collect()),
        Op::Gather {
            axis,
            indices,
            indices_shape,
        } => one(cpu::gather_plan(&inputs[0], *axis, indices, indices_shape)?.2),
        Op::Resize {
            output_shape,
            scales,
            transform,
            rounding,
        } => {
            cpu::resize_maps(
                &inputs[0],
                output_shape,
                scales.as_deref(),
                *transform,
                *rounding,
            )?;
            one(output_shape.clone())
        }
        Op::MatMul => one(cpu::matmul_plan(&inputs[0], &inputs[1])?.output_shape),
        Op::Reshape(shape) => one(shape.clone()),
        Op::ReduceMax { axes, keepdims } => {
            one(cpu::reduce_plan("ReduceMax", &inputs[0], axes, *keepdims)?.output_shape)
        }
        Op::TopK { axis, k, .. } => {
            let shape = cpu::top_k_plan(&inputs[0], *axis, *k)?.shape;
            Ok(vec![shape.clone(), shape])
        }
        Op::GatherElements(axis) => {
            cpu::gather_elements_plan(&inputs[0], &inputs[1], *axis)?;
            one(inputs[1].clone())
        }
        Op::Expand(shape) => one(cpu::broadcast_shape("Expand", &inputs[0], shape)?),
    }
}

/// Polls a future that cannot wait: the CPU backend's ops finish when first polled.
fn ready<F: Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("CPU backend ops never wait"),
    }
}

impl Network {
    /// Loads an ONNX detector (batch 1, fixed input size) for the engine's backends.
    pub fn from_onnx(model: &onnx::Model) -> Result<Self, LoadError> {
        let opset = model
            .opsets
            .iter()
            .find(|(domain, _)| domain.is_empty() || domain.as_str() == "ai.onnx")
            .map_or(1, |(_, &v)| v);
        if opset < MIN_OPSET {
            return Err(LoadError::Opset { found: opset });
        }
        let graph = &model.graph;
        let initializer_names: Vec<&str> =
            graph.initializers.iter().map(|t| t.name.as_str()).collect();
        let image_inputs: Vec<_> = graph
            .inputs
            .iter()
            .filter(|i| !initializer_names.contains(&i.name.as_str()))
            .collect();
        let [input] = image_inputs.as_slice() else {
            return Err(LoadError::Input(format!(
                "a detector has one image input, this model has {}",
                image_inputs.len()
            )));
        };
        let input_shape = input_shape(input)?;

        let mut loader = Loader {
            opset,
            known: HashMap::new(),
            constants: Vec::new(),
            steps: Vec::new(),
            value_shapes: Vec::new(),
        };
        let slot = loader.new_value(input_shape.clone());
        loader.known.insert(
            input.name.as_str(),
            Known::Value {
                slot,
                shape: input_shape.clone(),
                ints: false,
            },
        );
        for (i, t) in graph.initializers.iter().enumerate() {
            let known = from_onnx(t).map_err(|reason| LoadError::Node {
                node: format!("graph.initializer[{i}]"),
                op_type: "initializer".into(),
                reason,
            })?;
            loader.known.insert(t.name.as_str(), known);
        }
        for node in &graph.nodes {
            loader.node(node).map_err(|fault| match fault {
                Fault::Unsupported(detail) => LoadError::UnsupportedOp {
                    op_type: node.op_type.clone(),
                    node: node.name.clone(),
                    detail,
                },
                Fault::Invalid(reason) => LoadError::Node {
                    node: node.name.clone(),
                    op_type: node.op_type.clone(),
                    reason,
                },
            })?;
        }
        let mut outputs = Vec::new();
        let mut output_operands = Vec::new();
        for output in &graph.outputs {
            let known = loader
                .known
                .get(output.name.as_str())
                .cloned()
                .ok_or_else(|| LoadError::Node {
                    node: output.name.clone(),
                    op_type: "output".into(),
                    reason: "no node produces this graph output".into(),
                })?;
            outputs.push((output.name.clone(), known.shape().to_vec()));
            output_operands.push(loader.operand(&known));
        }
        let class_names = onnx::class_names(model)?;
        let Loader {
            mut steps,
            mut constants,
            mut value_shapes,
            ..
        } = loader;
        fuse_silu(&mut steps, &output_operands);
        let flops = super::conv_and_matmul_flops(&steps, &constants, &value_shapes);
        merge_sibling_convs(
            &mut steps,
            &mut constants,
            &mut value_shapes,
            &output_operands,
        );
        fuse_residual_adds(&mut steps, &value_shapes, &output_operands);
        drop_unread_constants(&mut steps, &mut constants, &mut output_operands);
        let last_use = last_uses(&steps, &output_operands, value_shapes.len());
        Ok(Network {
            input_name: input.name.clone(),
            input_shape,
            outputs,
            output_operands,
            class_names,
            steps,
            constants,
            last_use,
            flops,
            value_shapes,
        })
    }
}

fn input_shape(input: &onnx::ValueInfo) -> Result<Vec<usize>, LoadError> {
    let name = &input.name;
    let Some(tensor_type) = &input.tensor_type else {
        return Err(LoadError::Input(format!("\"{name}\" has no tensor type")));
    };
    if !data_type_is_float(tensor_type.elem_type) {
        return Err(LoadError::Input(format!(
            "\"{name}\" is {:?}; the engine feeds float images",
            tensor_type.elem_type
        )));
    }
    let dims = tensor_type
        .shape
        .as_ref()
        .ok_or_else(|| LoadError::Input(format!("\"{name}\" has no shape")))?;
    let shape = dims
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Fixed(v) if *v > 0 => Ok(*v as usize),
            Dim::Symbolic(s) => Err(LoadError::Input(format!("\"{name}\" has a dynamic dimension {i} (\"{s}\"); export with a fixed image size and batch 1"))),
            _ => Err(LoadError::Input(format!("\"{name}\" has no fixed size for dimension {i}; export with a fixed image size and batch 1"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    match shape.as_slice() {
        [1, 3, h, w] if h % 32 == 0 && w % 32 == 0 => Ok(shape),
        _ => Err(LoadError::Input(format!(
            "\"{name}\" has shape {shape:?}; the engine runs [1, 3, H, W] with H and W multiples of 32"
        ))),
    }
}

/// How many steps read `value`, plus the graph outputs that are `value`.
fn readers(steps: &[Step], outputs: &[Operand], value: usize) -> usize {
    steps
        .iter()
        .filter(|s| s.inputs.contains(&Operand::Value(value)))
        .count()
        + outputs
            .iter()
            .filter(|&&o| o == Operand::Value(value))
            .count()
}

/// Replaces `y = sigmoid(x); z = x * y` by a SiLU: fused into the convolution that produces `x`
/// when nothing else reads `x`, otherwise as one activation step.
fn fuse_silu(steps: &mut Vec<Step>, outputs: &[Operand]) {
    let readers = |steps: &[Step], value: usize| readers(steps, outputs, value);
    let mut i = 0;
    while i < steps.len() {
        let (Op::Activation(Activation::Sigmoid), [Operand::Value(x)], [y]) = (
            &steps[i].op,
            steps[i].inputs.as_slice(),
            steps[i].outputs.as_slice(),
        ) else {
            i += 1;
            continue;
        };
        let (x, y) = (*x, *y);
        let is_product = |s: &Step| {
            s.op == Op::Binary(BinaryOp::Mul)
                && (s.inputs == [Operand::Value(x), Operand::Value(y)]
                    || s.inputs == [Operand::Value(y), Operand::Value(x)])
        };
        let Some(j) = steps.iter().position(is_product) else {
            i += 1;
            continue;
        };
        if readers(steps, y) != 1 {
            i += 1;
            continue;
        }
        let z = steps[j].outputs[0];
        let producer = steps.iter().position(|s| {
            s.outputs == [x]
                && matches!(
                    s.op,
                    Op::Conv {
                        activation: None,
                        ..
                    }
                )
        });
        match producer {
            Some(p) if readers(steps, x) == 2 => {
                if let Op::Conv { activation, .. } = &mut steps[p].op {
                    *activation = Some(Activation::Silu);
                }
                steps[p].outputs = vec![z];
                steps.remove(j.max(i));
                steps.remove(j.min(i));
            }
            _ => {
                steps[i] = Step {
                    node: steps[j].node.clone(),
                    op: Op::Activation(Activation::Silu),
                    inputs: vec![Operand::Value(x)],
                    outputs: vec![z],
                };
                steps.remove(j);
                i += 1;
            }
        }
    }
}

/// Fuses `z = x + conv(y)` (a shortcut: a C2f block's bottlenecks) into the convolution, which
/// then adds `x` to its output after the activation: one step, and on the GPU one launch, fewer.
/// Applies where the Add's operands and output have one shape (no broadcasting), nothing else
/// reads the convolution's output, and `x` is computed before the convolution, so the fused step
/// can read it where the convolution ran. The fused step is named after both nodes.
fn fuse_residual_adds(steps: &mut Vec<Step>, value_shapes: &[Vec<usize>], outputs: &[Operand]) {
    let mut i = 0;
    while i < steps.len() {
        let (Op::Binary(BinaryOp::Add), [Operand::Value(a), Operand::Value(b)], [z]) = (
            &steps[i].op,
            steps[i].inputs.as_slice(),
            steps[i].outputs.as_slice(),
        ) else {
            i += 1;
            continue;
        };
        let (a, b, z) = (*a, *b, *z);
        let made_at = |value: usize| steps.iter().position(|s| s.outputs.contains(&value));
        let fusable = |conv: usize, residual: usize| {
            let p = made_at(conv)?;
            let plain_conv = matches!(
                steps[p].op,
                Op::Conv {
                    residual: false,
                    ..
                }
            );
            // The network's input (value 0) is made by no step: before every step.
            let residual_before = made_at(residual).is_none_or(|r| r < p);
            (plain_conv
                && conv != residual
                && readers(steps, outputs, conv) == 1
                && residual_before
                && value_shapes[a] == value_shapes[z]
                && value_shapes[b] == value_shapes[z])
                .then_some((p, residual))
        };
        let Some((p, residual)) = fusable(b, a).or_else(|| fusable(a, b)) else {
            i += 1;
            continue;
        };
        if let Op::Conv {
            residual: fused, ..
        } = &mut steps[p].op
        {
            *fused = true;
        }
        steps[p].node = joined_nodes(steps, &[p, i]);
        steps[p].inputs.push(Operand::Value(residual));
        steps[p].outputs = vec![z];
        steps.remove(i);
    }
}

/// Merges parallel branches of convolutions (a detection head's box and class branches at each
/// level): convolutions that read one value with one geometry and activation become one with all
/// their output channels; then, level by level, while each branch's output feeds one convolution
/// alone and those share their geometry and activation, they become one grouped convolution, a
/// group per branch, on the level before's merged output. Narrower branches are padded with zero
/// weights and biases to the widest, so the groups are equal; a channel Split at the end hands
/// each branch its output (the padding is a part no step reads). One launch per level where there
/// was one per branch, and wider products that fill a GPU better. The parts of a channel Split of
/// a batch of one are contiguous, so the GPU plan reads them in place. The first branch's padding
/// comes before its channels and the others' after theirs, so the first two branches' outputs
/// are adjacent: a Concat of them (a head's boxes and scores) is then a view of the merged
/// output, not a copy (YOLOv8n: boxes 64 channels, scores 80).
fn merge_sibling_convs(
    steps: &mut Vec<Step>,
    constants: &mut [Tensor],
    value_shapes: &mut Vec<Vec<usize>>,
    outputs: &[Operand],
) {
    let mut i = 0;
    while i < steps.len() {
        let first: Vec<usize> = std::iter::once(i)
            .chain(
                (i + 1..steps.len())
                    .filter(|&j| same_conv_on_same_input(&steps[i], &steps[j], constants)),
            )
            .collect();
        if first.len() == 1 {
            i += 1;
            continue;
        }
        let mut levels = vec![first];
        while let Some(next) =
            next_level(steps, levels.last().expect("one level"), constants, outputs)
        {
            levels.push(next);
        }
        let branches = levels[0].len();
        let mut merged_steps = Vec::with_capacity(levels.len() + 1);
        let mut input = steps[i].inputs[0];
        let mut widths_before: Vec<usize> = Vec::new(); // each branch's input channels used
        let mut padded_before = 0;
        // Where each branch's channels start in its group: after the first branch's padding.
        let lead = |widths: &[usize], padded: usize, b: usize| {
            if b == 0 { padded - widths[0] } else { 0 }
        };
        for (l, level) in levels.iter().enumerate() {
            let Op::Conv {
                weight,
                bias,
                attrs,
                activation,
                ..
            } = &steps[level[0]].op
            else {
                unreachable!("branches are convolutions")
            };
            let convs: Vec<(usize, Option<usize>)> = level
                .iter()
                .map(|&s| match steps[s].op {
                    Op::Conv { weight, bias, .. } => (weight, bias),
                    _ => unreachable!("branches are convolutions"),
                })
                .collect();
            let widths: Vec<usize> = convs
                .iter()
                .map(|&(w, _)| constants[w].shape()[0])
                .collect();
            let padded = *widths.iter().max().expect("branches");
            let w0 = constants[*weight].shape().to_vec();
            let taps = w0[2] * w0[3];
            // The first level reads the shared input; the others a group of the padded width each.
            let inputs_per_group = if l == 0 { w0[1] } else { padded_before };
            let mut merged_weight = vec![0.0; branches * padded * inputs_per_group * taps];
            let mut merged_bias = vec![0.0; branches * padded];
            for (b, &(w, bias_b)) in convs.iter().enumerate() {
                let (used, first_input) = if l == 0 {
                    (inputs_per_group, 0)
                } else {
                    (widths_before[b], lead(&widths_before, padded_before, b))
                };
                let first = b * padded + lead(&widths, padded, b);
                for (r, row) in constants[w].data().chunks(used * taps).enumerate() {
                    let at = ((first + r) * inputs_per_group + first_input) * taps;
                    merged_weight[at..at + row.len()].copy_from_slice(row);
                }
                if let Some(c) = bias_b {
                    merged_bias[first..first + widths[b]].copy_from_slice(constants[c].data());
                }
            }
            let channels = branches * padded;
            // The merged tensors take the first branch's constants; the others' are dropped after.
            constants[*weight] = Tensor::new(
                vec![channels, inputs_per_group, w0[2], w0[3]],
                merged_weight,
            )
            .expect("sized for its shape");
            if let Some(b) = bias {
                constants[*b] =
                    Tensor::new(vec![channels], merged_bias).expect("sized for its shape");
            }
            let mut shape = value_shapes[steps[level[0]].outputs[0]].clone();
            shape[1] = channels;
            let out = value_shapes.len();
            value_shapes.push(shape);
            merged_steps.push(Step {
                node: joined_nodes(steps, level),
                op: Op::Conv {
                    weight: *weight,
                    bias: *bias,
                    attrs: Conv2d {
                        group: if l == 0 { 1 } else { branches },
                        ..attrs.clone()
                    },
                    activation: *activation,
                    residual: false,
                },
                inputs: vec![input],
                outputs: vec![out],
            });
            input = Operand::Value(out);
            widths_before = widths;
            padded_before = padded;
        }
        // Each branch's output and its padding (a value no step reads), in the group's order.
        let last = levels.last().expect("one level");
        let mut sizes = Vec::new();
        let mut parts = Vec::new();
        for (b, &s) in last.iter().enumerate() {
            let output = steps[s].outputs[0];
            let pad = padded_before - widths_before[b];
            let padding = (pad > 0).then(|| {
                let mut shape = value_shapes[output].clone();
                shape[1] = pad;
                value_shapes.push(shape);
                (value_shapes.len() - 1, pad)
            });
            let branch = Some((output, widths_before[b]));
            let in_order = if lead(&widths_before, padded_before, b) > 0 {
                [padding, branch]
            } else {
                [branch, padding]
            };
            for (part, size) in in_order.into_iter().flatten() {
                parts.push(part);
                sizes.push(size);
            }
        }
        merged_steps.push(Step {
            node: joined_nodes(steps, last),
            op: Op::Split { axis: 1, sizes },
            inputs: vec![input],
            outputs: parts,
        });
        let mut replaced: Vec<usize> = levels.concat();
        replaced.sort_unstable();
        for &s in replaced.iter().rev() {
            steps.remove(s);
        }
        let merged = merged_steps.len();
        steps.splice(i..i, merged_steps);
        i += merged;
    }
}

/// The names of `level`'s steps, joined: the merged step's name in reports and errors.
fn joined_nodes(steps: &[Step], level: &[usize]) -> String {
    level
        .iter()
        .map(|&s| steps[s].node.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The next level of parallel branches ending in `level`'s steps: for each, the one convolution
/// that reads its output, which nothing else reads and which is not a graph output; all with one
/// geometry, activation and bias or none, and no groups.
fn next_level(
    steps: &[Step],
    level: &[usize],
    constants: &[Tensor],
    outputs: &[Operand],
) -> Option<Vec<usize>> {
    let next: Vec<usize> = level
        .iter()
        .map(|&s| {
            let value = Operand::Value(steps[s].outputs[0]);
            let mut readers = (0..steps.len()).filter(|&r| steps[r].inputs.contains(&value));
            match (readers.next(), readers.next()) {
                (Some(r), None) if !outputs.contains(&value) && steps[r].inputs == [value] => {
                    Some(r)
                }
                _ => None,
            }
        })
        .collect::<Option<_>>()?;
    let like_the_first = |&r: &usize| same_geometry(&steps[next[0]], &steps[r], constants);
    next.iter().all(like_the_first).then_some(next)
}

/// Whether `b` is a convolution like `a` (same attributes, kernel size, input channels,
/// activation, bias or none, no groups) on the same input value.
fn same_conv_on_same_input(a: &Step, b: &Step, constants: &[Tensor]) -> bool {
    matches!(a.inputs.as_slice(), [Operand::Value(_)])
        && a.inputs == b.inputs
        && same_geometry(a, b, constants)
        && matches!((&a.op, &b.op), (Op::Conv { weight: wa, .. }, Op::Conv { weight: wb, .. })
            if constants[*wa].shape()[1] == constants[*wb].shape()[1])
}

/// Whether `a` and `b` are convolutions with the same attributes, kernel size, activation and
/// bias or none, and no groups.
fn same_geometry(a: &Step, b: &Step, constants: &[Tensor]) -> bool {
    let (
        Op::Conv {
            weight: wa,
            bias: ba,
            attrs: aa,
            activation: ca,
            residual: false,
        },
        Op::Conv {
            weight: wb,
            bias: bb,
            attrs: ab,
            activation: cb,
            residual: false,
        },
    ) = (&a.op, &b.op)
    else {
        return false;
    };
    aa == ab
        && aa.group == 1
        && ca == cb
        && ba.is_some() == bb.is_some()
        && constants[*wa].shape()[2..] == constants[*wb].shape()[2..]
}

/// Removes the constants no step or output reads (a merged convolution's former weights), and
/// renumbers the rest.
fn drop_unread_constants(steps: &mut [Step], constants: &mut Vec<Tensor>, outputs: &mut [Operand]) {
    fn each_constant(steps: &mut [Step], outputs: &mut [Operand], f: &mut dyn FnMut(&mut usize)) {
        for step in steps.iter_mut() {
            if let Op::Conv { weight, bias, .. } = &mut step.op {
                f(weight);
                if let Some(b) = bias {
                    f(b);
                }
            }
        }
        let inputs = steps.iter_mut().flat_map(|s| s.inputs.iter_mut());
        for operand in inputs.chain(outputs.iter_mut()) {
            if let Operand::Constant(c) = operand {
                f(c);
            }
        }
    }
    let mut read = vec![false; constants.len()];
    each_constant(steps, outputs, &mut |c| read[*c] = true);
    let mut renumbered = Vec::with_capacity(constants.len());
    let mut next = 0;
    for &r in &read {
        renumbered.push(next);
        next += usize::from(r);
    }
    each_constant(steps, outputs, &mut |c| *c = renumbered[*c]);
    let mut r = read.iter();
    constants.retain(|_| *r.next().expect("one flag per constant"));
}

fn last_uses(steps: &[Step], outputs: &[Operand], values: usize) -> Vec<Option<usize>> {
    let mut last = vec![None; values];
    for (index, step) in steps.iter().enumerate() {
        for operand in &step.inputs {
            if let Operand::Value(v) = *operand {
                last[v] = Some(index);
            }
        }
    }
    for operand in outputs {
        if let Operand::Value(v) = *operand {
            last[v] = None;
        }
    }
    last
}
