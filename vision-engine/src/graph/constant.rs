//! Values known at load time, and folding of the integer tensors shape sub-graphs compute.

use crate::{
    ShapeError, Tensor,
    cpu::{self, BinaryOp},
    onnx::{self, TensorData},
    tensor::shape_error,
};

/// An integer (or boolean) tensor: shapes, indices and bounds in ONNX sub-graphs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ints {
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

impl Ints {
    /// The same values as f32: how run-time operands and float ops take integer constants.
    pub fn to_floats(&self) -> Tensor {
        let data = self.data.iter().map(|&v| v as f32).collect();
        Tensor::new(self.shape.clone(), data).expect("an Ints fills its shape")
    }

    /// A float tensor truncated to integers, as ONNX `Cast` does.
    pub fn truncated(t: &Tensor) -> Self {
        Ints {
            shape: t.shape().to_vec(),
            data: t.data().iter().map(|&v| v as i64).collect(),
        }
    }
}

/// What loading knows about one ONNX value.
#[derive(Debug, Clone)]
pub(super) enum Known {
    Float(Tensor),
    Int(Ints),
    /// Computed at run time into value `slot`; `ints` when it holds integers (as exact f32,
    /// see `cpu::select`).
    Value {
        slot: usize,
        shape: Vec<usize>,
        ints: bool,
    },
}

impl Known {
    pub fn shape(&self) -> &[usize] {
        match self {
            Known::Float(t) => t.shape(),
            Known::Int(i) => &i.shape,
            Known::Value { shape, .. } => shape,
        }
    }

    pub fn is_constant(&self) -> bool {
        !matches!(self, Known::Value { .. })
    }

    /// Whether the value is of an integer type.
    pub fn holds_ints(&self) -> bool {
        match self {
            Known::Float(_) => false,
            Known::Int(_) => true,
            Known::Value { ints, .. } => *ints,
        }
    }
}

/// Converts an ONNX tensor; float types become f32 (the engine computes in f32).
pub(super) fn from_onnx(t: &onnx::Tensor) -> Result<Known, String> {
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| format!("tensor \"{}\" has negative dimension {d}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let float = |data: Vec<f32>| {
        Tensor::new(shape.clone(), data)
            .map(Known::Float)
            .map_err(|e| e.to_string())
    };
    let int = |data: Vec<i64>| {
        if data.len() == shape.iter().product::<usize>() {
            Ok(Known::Int(Ints {
                shape: shape.clone(),
                data,
            }))
        } else {
            Err(format!(
                "tensor \"{}\" has {} values for shape {shape:?}",
                t.name,
                data.len()
            ))
        }
    };
    match &t.data {
        TensorData::F32(v) => float(v.clone()),
        TensorData::F16(v) => float(v.iter().map(|&b| onnx::f16_to_f32(b)).collect()),
        TensorData::F64(v) => float(v.iter().map(|&x| x as f32).collect()),
        TensorData::I64(v) => int(v.clone()),
        TensorData::I32(v) => int(v.iter().map(|&x| i64::from(x)).collect()),
        TensorData::U8(v) => int(v.iter().map(|&x| i64::from(x)).collect()),
        TensorData::I8(v) => int(v.iter().map(|&x| i64::from(x)).collect()),
        TensorData::Bool(v) => int(v.iter().map(|&x| i64::from(x)).collect()),
    }
}

/// Largest integer tensor folded through f32 positions, which are exact up to 2^24.
const MAX_FOLDED: usize = 1 << 24;

fn positions(shape: &[usize], first: usize) -> Result<Tensor, ShapeError> {
    let len: usize = shape.iter().product();
    if first + len > MAX_FOLDED {
        return Err(shape_error("fold", "integer tensor too large to fold"));
    }
    Tensor::new(
        shape.to_vec(),
        (first..first + len).map(|p| p as f32).collect(),
    )
}

/// Applies an op that only moves values (Gather, Slice, Transpose, Concat, reshapes) to integer
/// tensors: it runs on their positions, which f32 holds exactly, then reads the integers there.
pub(super) fn move_ints(
    inputs: &[&Ints],
    op: impl FnOnce(&[&Tensor]) -> Result<Tensor, ShapeError>,
) -> Result<Ints, ShapeError> {
    let mut all = Vec::new();
    let mut position_tensors = Vec::new();
    for input in inputs {
        position_tensors.push(positions(&input.shape, all.len())?);
        all.extend_from_slice(&input.data);
    }
    let moved = op(&position_tensors.iter().collect::<Vec<_>>())?;
    Ok(Ints {
        shape: moved.shape().to_vec(),
        data: moved.data().iter().map(|&p| all[p as usize]).collect(),
    })
}

/// Integer Add/Sub/Mul/Div/Mod with broadcasting; division truncates, as in ONNX.
pub(super) fn int_binary(op: BinaryOp, a: &Ints, b: &Ints) -> Result<Ints, ShapeError> {
    int_elementwise(op.name(), &[a, b], |v| {
        op.apply_int(v[0], v[1])
            .ok_or_else(|| shape_error(op.name(), "integer division by zero"))
    })
}

/// An element-wise op on integer tensors broadcast together (numpy rules): `f` gets one value of
/// each input.
pub(super) fn int_elementwise(
    op: &'static str,
    inputs: &[&Ints],
    f: impl Fn(&[i64]) -> Result<i64, ShapeError>,
) -> Result<Ints, ShapeError> {
    let mut shape: Vec<usize> = Vec::new();
    for x in inputs {
        shape = cpu::broadcast_shape(op, &shape, &x.shape)?;
    }
    // Each input's positions, broadcast to the output shape by adding zeros of that shape.
    let spread = inputs
        .iter()
        .map(|x| {
            let p = cpu::binary(
                BinaryOp::Add,
                &positions(&x.shape, 0)?,
                &Tensor::zeros(shape.clone()),
            )?;
            Ok(p.data().iter().map(|&v| v as usize).collect())
        })
        .collect::<Result<Vec<Vec<usize>>, ShapeError>>()?;
    let len: usize = shape.iter().product();
    let mut values = vec![0; inputs.len()];
    let data = (0..len)
        .map(|e| {
            for ((value, x), p) in values.iter_mut().zip(inputs).zip(&spread) {
                *value = x.data[p[e]];
            }
            f(&values)
        })
        .collect::<Result<_, _>>()?;
    Ok(Ints { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_f32_precision_move_exactly() {
        let big = Ints {
            shape: vec![3],
            data: vec![i64::MAX, -7, 1 << 40],
        };
        let sliced = move_ints(&[&big], |t| cpu::slice(t[0], &[1], &[3], None, None)).unwrap();
        assert_eq!(
            sliced,
            Ints {
                shape: vec![2],
                data: vec![-7, 1 << 40]
            }
        );
        let other = Ints {
            shape: vec![1],
            data: vec![5],
        };
        let joined = move_ints(&[&big, &other], |t| cpu::concat(t, 0)).unwrap();
        assert_eq!(joined.data, [i64::MAX, -7, 1 << 40, 5]);
    }

    #[test]
    fn integer_arithmetic_broadcasts_and_truncates() {
        let a = Ints {
            shape: vec![2],
            data: vec![640, -7],
        };
        let b = Ints {
            shape: vec![],
            data: vec![2],
        };
        assert_eq!(int_binary(BinaryOp::Div, &a, &b).unwrap().data, [320, -3]);
        assert_eq!(int_binary(BinaryOp::Mul, &b, &a).unwrap().data, [1280, -14]);
        assert!(
            int_binary(
                BinaryOp::Div,
                &a,
                &Ints {
                    shape: vec![],
                    data: vec![0]
                }
            )
            .is_err()
        );
    }
}
