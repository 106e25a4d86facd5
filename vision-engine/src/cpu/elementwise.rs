use super::resize::advance;
use crate::tensor::{ShapeError, Tensor, shape_error, strides};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Integer `Div` (truncating) on exact integers held as f32 (see `cpu::select`).
    IntDiv,
    /// Integer `Mod` with `fmod = 0`: the remainder takes the divisor's sign (Python's `%`).
    Mod,
    /// Integer `Mod` with `fmod = 1`: the remainder takes the dividend's sign (C's `%`).
    Fmod,
}

impl BinaryOp {
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::IntDiv | BinaryOp::Mod | BinaryOp::Fmod => self
                .apply_int(a as i64, b as i64)
                .map_or(f32::NAN, |v| v as f32),
        }
    }

    /// The op on integers; `None` for a division by zero. Div truncates, as ONNX integer Div.
    pub fn apply_int(self, x: i64, y: i64) -> Option<i64> {
        match self {
            BinaryOp::Add => Some(x.wrapping_add(y)),
            BinaryOp::Sub => Some(x.wrapping_sub(y)),
            BinaryOp::Mul => Some(x.wrapping_mul(y)),
            BinaryOp::Div | BinaryOp::IntDiv => x.checked_div(y),
            BinaryOp::Fmod => x.checked_rem(y),
            BinaryOp::Mod => x.checked_rem(y).map(|r| {
                if r != 0 && (r < 0) != (y < 0) {
                    r + y
                } else {
                    r
                }
            }),
        }
    }

    /// Whether the op computes on integers (held exactly as f32 at run time).
    pub fn is_integer(self) -> bool {
        matches!(self, BinaryOp::IntDiv | BinaryOp::Mod | BinaryOp::Fmod)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div | BinaryOp::IntDiv => "Div",
            BinaryOp::Mod | BinaryOp::Fmod => "Mod",
        }
    }
}

/// An integer op's divisor must hold no zero: checked before running (at load for a model).
pub(crate) fn check_divisor(op: BinaryOp, divisor: &Tensor) -> Result<(), ShapeError> {
    if op.is_integer() && divisor.data().iter().any(|&v| v as i64 == 0) {
        return Err(shape_error(op.name(), "integer division by zero"));
    }
    Ok(())
}

/// The shape two operands broadcast to (numpy rules, as ONNX uses them).
pub fn broadcast_shape(
    op: &'static str,
    a: &[usize],
    b: &[usize],
) -> Result<Vec<usize>, ShapeError> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(shape_error(
                op,
                format!("shapes {a:?} and {b:?} do not broadcast"),
            )),
        })
        .collect()
}

/// Strides of `shape` seen from a broadcast `output` shape: 0 along broadcast axes.
pub(crate) fn broadcast_strides(shape: &[usize], output: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let lead = output.len() - shape.len();
    (0..output.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// ONNX `Add`, `Sub`, `Mul`, `Div` (and integer `Div`, `Mod`) with multidirectional broadcasting.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, ShapeError> {
    let shape = broadcast_shape(op.name(), a.shape(), b.shape())?;
    check_divisor(op, b)?;
    if a.shape() == b.shape() {
        let data = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(&x, &y)| op.apply(x, y))
            .collect();
        return Tensor::new(shape, data);
    }
    let (sa, sb) = (
        broadcast_strides(a.shape(), &shape),
        broadcast_strides(b.shape(), &shape),
    );
    let mut output = Tensor::zeros(shape.clone());
    let mut index = vec![0usize; shape.len()];
    for value in output.data_mut() {
        let offset = |s: &[usize]| index.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
        *value = op.apply(a.data()[offset(&sa)], b.data()[offset(&sb)]);
        advance(&mut index, &shape);
    }
    Ok(output)
}
