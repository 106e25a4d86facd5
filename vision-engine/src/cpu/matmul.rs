use super::{broadcast_shape, elementwise::broadcast_strides, gemm, resize::advance};
use crate::tensor::{ShapeError, Tensor, shape_error};

/// How a `MatMul` runs: `batch` matrix products of `m×k · k×n`, each operand's batch index
/// mapped through its broadcast strides (in whole matrices).
pub(crate) struct MatmulPlan {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: Vec<usize>,
    pub stride_a: Vec<usize>,
    pub stride_b: Vec<usize>,
    pub output_shape: Vec<usize>,
}

pub(crate) fn matmul_plan(a: &[usize], b: &[usize]) -> Result<MatmulPlan, ShapeError> {
    let promote = |s: &[usize], front: bool| match s.len() {
        0 => Err(shape_error("MatMul", "scalars are not matrices")),
        1 if front => Ok(vec![1, s[0]]),
        1 => Ok(vec![s[0], 1]),
        _ => Ok(s.to_vec()),
    };
    let (sa, sb) = (promote(a, true)?, promote(b, false)?);
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(shape_error(
            "MatMul",
            format!("{a:?} · {b:?}: inner sizes {k} and {k2} differ"),
        ));
    }
    let batch = broadcast_shape("MatMul", &sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let stride_a = broadcast_strides(&sa[..sa.len() - 2], &batch);
    let stride_b = broadcast_strides(&sb[..sb.len() - 2], &batch);
    let mut output_shape = batch.clone();
    if a.len() > 1 {
        output_shape.push(m);
    }
    if b.len() > 1 {
        output_shape.push(n);
    }
    Ok(MatmulPlan {
        m,
        n,
        k,
        batch,
        stride_a,
        stride_b,
        output_shape,
    })
}

/// ONNX `MatMul`: numpy semantics, with broadcasting over the leading (batch) axes and 1-D
/// operands promoted to matrices and squeezed back.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, ShapeError> {
    let MatmulPlan {
        m,
        n,
        k,
        batch,
        stride_a,
        stride_b,
        output_shape,
    } = matmul_plan(a.shape(), b.shape())?;
    let batches: usize = batch.iter().product();
    let mut data = vec![0.0; batches * m * n];
    let mut index = vec![0usize; batch.len()];
    for out in data.chunks_mut(m * n) {
        let offset = |s: &[usize]| index.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
        let a_block = &a.data()[offset(&stride_a) * m * k..][..m * k];
        let b_block = &b.data()[offset(&stride_b) * k * n..][..k * n];
        gemm(m, n, k, a_block, b_block, out, false);
        advance(&mut index, &batch);
    }
    Tensor::new(output_shape, data)
}
