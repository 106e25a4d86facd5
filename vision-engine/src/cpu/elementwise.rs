use super::resize::advance;
use crate::tensor::{ShapeError, Tensor, shape_error, strides};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
        }
    }
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

/// ONNX `Add`, `Sub`, `Mul`, `Div` with multidirectional broadcasting.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, ShapeError> {
    let shape = broadcast_shape(op.name(), a.shape(), b.shape())?;
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
