//! The ops of NMS-free (end-to-end) detection heads, such as YOLO26's: `ReduceMax`, `TopK`,
//! `GatherElements` and `Expand`.
//!
//! Run-time integer tensors (TopK's indices and what is computed from them) are f32 tensors
//! holding exact integers: f32 holds every integer up to 2^24 exactly, and the loader lets such
//! values come only from TopK over an axis of at most [`MAX_EXACT_INDEX`] elements and pass only
//! through ops that cannot grow them (moves, integer Div and Mod by constants).

use super::{broadcast_shape, broadcast_strides, resize::advance};
use crate::tensor::{ShapeError, Tensor, normalize_axis, shape_error, strides};
use std::cmp::Ordering;

/// Largest integer count f32 holds exactly: the longest axis TopK may index.
pub const MAX_EXACT_INDEX: usize = 1 << 24;

/// A reduction over contiguous axes, as (outer count, reduced count, inner count).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReducePlan {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub output_shape: Vec<usize>,
}

/// Checks a reduction's `axes` (empty: every axis) and computes its plan. The axes must be
/// contiguous after sorting (a single axis, or all of them, in detector exports).
pub(crate) fn reduce_plan(
    op: &'static str,
    input: &[usize],
    axes: &[i64],
    keepdims: bool,
) -> Result<ReducePlan, ShapeError> {
    let mut axes: Vec<usize> = if axes.is_empty() {
        (0..input.len()).collect()
    } else {
        axes.iter()
            .map(|&a| normalize_axis(op, a, input.len()))
            .collect::<Result<_, _>>()?
    };
    axes.sort_unstable();
    axes.dedup();
    let Some((&first, &last)) = axes.first().zip(axes.last()) else {
        return Err(shape_error(op, "reducing a scalar"));
    };
    if last - first + 1 != axes.len() {
        return Err(shape_error(
            op,
            format!("axes {axes:?} are not contiguous (the engine reduces contiguous axes)"),
        ));
    }
    let len: usize = input[first..=last].iter().product();
    if len == 0 {
        return Err(shape_error(
            op,
            format!("axes {axes:?} of {input:?} are empty"),
        ));
    }
    let output_shape = input
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Ok(ReducePlan {
        outer: input[..first].iter().product(),
        len,
        inner: input[last + 1..].iter().product(),
        output_shape,
    })
}

/// ONNX `ReduceMax` over `axes` (empty: all), keeping them as size 1 when `keepdims`.
pub fn reduce_max(input: &Tensor, axes: &[i64], keepdims: bool) -> Result<Tensor, ShapeError> {
    let ReducePlan {
        outer,
        len,
        inner,
        output_shape,
    } = reduce_plan("ReduceMax", input.shape(), axes, keepdims)?;
    let data = (0..outer * inner)
        .map(|i| {
            let (o, r) = (i / inner, i % inner);
            (0..len)
                .map(|k| input.data()[(o * len + k) * inner + r])
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    Tensor::new(output_shape, data)
}

/// TopK's layout around its axis, and the shape of both outputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopKPlan {
    pub axis: usize,
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub shape: Vec<usize>,
}

pub(crate) fn top_k_plan(input: &[usize], axis: i64, k: usize) -> Result<TopKPlan, ShapeError> {
    let axis = normalize_axis("TopK", axis, input.len())?;
    let len = input[axis];
    if k > len {
        return Err(shape_error(
            "TopK",
            format!("k {k} is larger than axis {axis} of {input:?}"),
        ));
    }
    if len > MAX_EXACT_INDEX {
        return Err(shape_error(
            "TopK",
            format!("axis {axis} has {len} elements; indices are exact up to {MAX_EXACT_INDEX}"),
        ));
    }
    let mut shape = input.to_vec();
    shape[axis] = k;
    Ok(TopKPlan {
        axis,
        outer: input[..axis].iter().product(),
        len,
        inner: input[axis + 1..].iter().product(),
        shape,
    })
}

/// The order TopK returns: best value first (largest or smallest), ties by lower index, as ONNX
/// Runtime orders them. NaN counts as the worst value, so the order is total and never panics.
fn top_k_order(largest: bool) -> impl Fn(&(f32, usize), &(f32, usize)) -> Ordering {
    let worst = if largest {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let key = move |v: f32| if v.is_nan() { worst } else { v };
    move |&(a, i), &(b, j)| {
        let by_value = key(b).partial_cmp(&key(a)).expect("no NaN keys");
        let by_value = if largest {
            by_value
        } else {
            by_value.reverse()
        };
        by_value.then(i.cmp(&j))
    }
}

/// ONNX `TopK` (sorted): the `k` best values along `axis` and their indices (exact integers held
/// as f32), largest first when `largest`, smallest first otherwise; equal values in index order.
pub fn top_k(
    input: &Tensor,
    axis: i64,
    k: usize,
    largest: bool,
) -> Result<[Tensor; 2], ShapeError> {
    let TopKPlan {
        outer,
        len,
        inner,
        shape,
        ..
    } = top_k_plan(input.shape(), axis, k)?;
    let order = top_k_order(largest);
    let mut values = Tensor::zeros(shape.clone());
    let mut indices = Tensor::zeros(shape);
    let mut row = Vec::with_capacity(len);
    for o in 0..outer {
        for r in 0..inner {
            row.clear();
            row.extend((0..len).map(|j| (input.data()[(o * len + j) * inner + r], j)));
            if k < len && k > 0 {
                row.select_nth_unstable_by(k - 1, &order);
            }
            row[..k].sort_unstable_by(&order);
            for (t, &(value, index)) in row[..k].iter().enumerate() {
                let at = (o * k + t) * inner + r;
                values.data_mut()[at] = value;
                indices.data_mut()[at] = index as f32;
            }
        }
    }
    Ok([values, indices])
}

/// Checks `GatherElements` shapes: same rank, and along every other axis no more indices than
/// the data has (ONNX Runtime's rule). Returns the normalised axis.
pub(crate) fn gather_elements_plan(
    data: &[usize],
    indices: &[usize],
    axis: i64,
) -> Result<usize, ShapeError> {
    let axis = normalize_axis("GatherElements", axis, data.len())?;
    let fits = indices.len() == data.len()
        && indices
            .iter()
            .zip(data)
            .enumerate()
            .all(|(i, (&n, &d))| i == axis || n <= d);
    if !fits {
        return Err(shape_error(
            "GatherElements",
            format!("indices {indices:?} do not fit data {data:?} along axis {axis}"),
        ));
    }
    Ok(axis)
}

/// ONNX `GatherElements`: `out[.., i, ..] = data[.., indices[.., i, ..], ..]` along `axis`, the
/// indices exact integers held as f32 (negative ones count from the end). An index that is not
/// an integer within the axis is an error here; the GPU kernel writes NaN for it.
pub fn gather_elements(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, ShapeError> {
    let axis = gather_elements_plan(data.shape(), indices.shape(), axis)?;
    let data_strides = strides(data.shape());
    let len = data.shape()[axis] as i64;
    let shape = indices.shape().to_vec();
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(indices.len());
    for &raw in indices.data() {
        let resolved = if raw < 0.0 { raw + len as f32 } else { raw };
        if resolved.fract() != 0.0 || !(0.0..len as f32).contains(&resolved) {
            return Err(shape_error(
                "GatherElements",
                format!("index {raw} is out of range for axis {axis} of size {len}"),
            ));
        }
        let offset: usize = index
            .iter()
            .zip(&data_strides)
            .enumerate()
            .map(|(d, (&i, &s))| if d == axis { resolved as usize } else { i } * s)
            .sum();
        out.push(data.data()[offset]);
        advance(&mut index, &shape);
    }
    Tensor::new(shape, out)
}

/// ONNX `Expand`: `input` broadcast with `shape` (numpy rules, both ways).
pub fn expand(input: &Tensor, shape: &[usize]) -> Result<Tensor, ShapeError> {
    let output = broadcast_shape("Expand", input.shape(), shape)?;
    let source = broadcast_strides(input.shape(), &output);
    let mut index = vec![0usize; output.len()];
    let mut out = Vec::with_capacity(output.iter().product());
    for _ in 0..output.iter().product::<usize>() {
        let offset: usize = index.iter().zip(&source).map(|(i, s)| i * s).sum();
        out.push(input.data()[offset]);
        advance(&mut index, &output);
    }
    Tensor::new(output, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn top_k_orders_ties_by_index_and_nan_last() {
        let x = t(&[1, 6], &[3.0, 5.0, 3.0, f32::NAN, 5.0, -1.0]);
        let [values, indices] = top_k(&x, 1, 4, true).unwrap();
        assert_eq!(values.data(), [5.0, 5.0, 3.0, 3.0]);
        assert_eq!(indices.data(), [1.0, 4.0, 0.0, 2.0]);
        let [values, indices] = top_k(&x, -1, 3, false).unwrap();
        assert_eq!(values.data(), [-1.0, 3.0, 3.0]);
        assert_eq!(indices.data(), [5.0, 0.0, 2.0]);
        assert!(top_k(&x, 1, 7, true).is_err());
    }

    #[test]
    fn reductions_need_contiguous_axes() {
        let x = t(&[2, 3], &[1.0, 7.0, -2.0, 4.0, 0.5, 9.0]);
        assert_eq!(reduce_max(&x, &[-1], false).unwrap().data(), [7.0, 9.0]);
        assert_eq!(reduce_max(&x, &[0], true).unwrap().shape(), [1, 3]);
        assert_eq!(reduce_max(&x, &[], false).unwrap().data(), [9.0]);
        let cube = Tensor::zeros(vec![2, 2, 2]);
        let err = reduce_max(&cube, &[0, 2], false).unwrap_err();
        assert!(err.to_string().contains("not contiguous"), "{err}");
    }

    #[test]
    fn gather_elements_checks_its_indices() {
        let x = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = gather_elements(&x, &t(&[2, 2], &[2.0, -3.0, 1.0, 0.0]), 1).unwrap();
        assert_eq!(out.data(), [3.0, 1.0, 5.0, 4.0]);
        assert!(gather_elements(&x, &t(&[1, 1], &[3.0]), 1).is_err());
        assert!(gather_elements(&x, &t(&[1, 1], &[0.5]), 1).is_err());
        assert!(gather_elements(&x, &t(&[3, 1], &[0.0; 3]), 1).is_err());
    }

    #[test]
    fn expand_broadcasts_both_ways() {
        let out = expand(&t(&[2, 1], &[1.0, 2.0]), &[3]).unwrap();
        assert_eq!(out.shape(), [2, 3]);
        assert_eq!(out.data(), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    }
}
