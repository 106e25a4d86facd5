//! Ops that move values without arithmetic: exact on every backend.

use super::resize::advance;
use crate::tensor::{ShapeError, Tensor, normalize_axis, shape_error, strides};

/// Checks `perm` and returns the output shape and, per output axis, the input stride it walks.
pub(crate) fn transpose_plan(
    input: &[usize],
    perm: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), ShapeError> {
    let rank = input.len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(shape_error(
            "Transpose",
            format!("perm {perm:?} is not a permutation of {rank} axes"),
        ));
    }
    let in_strides = strides(input);
    Ok((
        perm.iter().map(|&p| input[p]).collect(),
        perm.iter().map(|&p| in_strides[p]).collect(),
    ))
}

/// ONNX `Transpose`; an empty `perm` reverses the axes.
pub fn transpose(input: &Tensor, perm: &[usize]) -> Result<Tensor, ShapeError> {
    let (shape, source_strides) = transpose_plan(input.shape(), perm)?;
    let (Some((&row_len, outer_shape)), Some((&row_stride, outer_strides))) =
        (shape.split_last(), source_strides.split_last())
    else {
        return Ok(input.clone()); // A scalar.
    };
    if input.is_empty() {
        return Tensor::new(shape, Vec::new());
    }
    // Output row by output row: the index arithmetic once per row, a strided read per value.
    let mut data = Vec::with_capacity(shape.iter().product());
    let mut index = vec![0usize; outer_shape.len()];
    for _ in 0..outer_shape.iter().product::<usize>() {
        let first: usize = index.iter().zip(outer_strides).map(|(i, s)| i * s).sum();
        let row = input.data()[first..].iter().step_by(row_stride);
        data.extend(row.take(row_len));
        advance(&mut index, outer_shape);
    }
    Tensor::new(shape, data)
}

/// Splits a shape around `axis` into (outer count, axis length, inner count).
fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Checks that `shapes` agree except along `axis`; returns the axis and the output shape.
pub(crate) fn concat_shape(
    shapes: &[&[usize]],
    axis: i64,
) -> Result<(usize, Vec<usize>), ShapeError> {
    let first = shapes
        .first()
        .ok_or_else(|| shape_error("Concat", "no inputs"))?;
    let axis = normalize_axis("Concat", axis, first.len())?;
    let mut shape = first.to_vec();
    shape[axis] = 0;
    for s in shapes {
        let fits = s.len() == shape.len()
            && s.iter()
                .zip(first.iter())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !fits {
            return Err(shape_error(
                "Concat",
                format!("{s:?} does not fit {first:?} along axis {axis}"),
            ));
        }
        shape[axis] += s[axis];
    }
    Ok((axis, shape))
}

/// ONNX `Concat` along `axis`.
pub fn concat(inputs: &[&Tensor], axis: i64) -> Result<Tensor, ShapeError> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let (axis, shape) = concat_shape(&shapes, axis)?;
    let (outer, _, inner) = around_axis(&shape, axis);
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for t in inputs {
            let block = t.shape()[axis] * inner;
            data.extend_from_slice(&t.data()[o * block..][..block]);
        }
    }
    Tensor::new(shape, data)
}

/// `Split` as slices: for each part, the plan (as `slice_plan` gives) that cuts it out.
pub(crate) fn split_plan(
    input: &[usize],
    axis: i64,
    sizes: &[usize],
) -> Result<Vec<SlicePlan>, ShapeError> {
    let axis = normalize_axis("Split", axis, input.len())?;
    let len = input[axis];
    if sizes.iter().sum::<usize>() != len {
        return Err(shape_error(
            "Split",
            format!("sizes {sizes:?} do not add up to {len} along axis {axis}"),
        ));
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&size| {
            let mut plan: SlicePlan = input.iter().map(|&d| (0, 1, d)).collect();
            plan[axis] = (start as i64, 1, size);
            start += size;
            plan
        })
        .collect())
}

/// ONNX `Split` along `axis` into parts of the given sizes.
pub fn split(input: &Tensor, axis: i64, sizes: &[usize]) -> Result<Vec<Tensor>, ShapeError> {
    split_plan(input.shape(), axis, sizes)?;
    let axis = normalize_axis("Split", axis, input.shape().len())?;
    let (outer, len, inner) = around_axis(input.shape(), axis);
    let mut start = 0;
    sizes
        .iter()
        .map(|&size| {
            let mut shape = input.shape().to_vec();
            shape[axis] = size;
            let mut data = Vec::with_capacity(outer * size * inner);
            for o in 0..outer {
                data.extend_from_slice(&input.data()[(o * len + start) * inner..][..size * inner]);
            }
            start += size;
            Tensor::new(shape, data)
        })
        .collect()
}

/// Per input axis of a slice: the first index read, the step, and how many are read.
pub(crate) type SlicePlan = Vec<(i64, i64, usize)>;

/// Per input axis: the first index read, the step, and how many are read (ONNX `Slice` rules:
/// negative bounds count from the end, bounds are clamped, steps may be negative).
pub(crate) fn slice_plan(
    input: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<SlicePlan, ShapeError> {
    let rank = input.len();
    let default_axes: Vec<i64> = (0..starts.len() as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    let ones = vec![1; starts.len()];
    let steps = steps.unwrap_or(&ones);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(shape_error(
            "Slice",
            "starts, ends, axes and steps differ in length",
        ));
    }
    let mut plan: Vec<(i64, i64, usize)> = input.iter().map(|&d| (0, 1, d)).collect();
    for i in 0..starts.len() {
        let axis = normalize_axis("Slice", axes[i], rank)?;
        let dim = input[axis] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(shape_error("Slice", format!("step 0 on axis {axis}")));
        }
        let resolve = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = if step > 0 {
            (
                resolve(starts[i]).clamp(0, dim),
                resolve(ends[i]).clamp(0, dim),
            )
        } else {
            (
                resolve(starts[i]).clamp(0, dim - 1),
                resolve(ends[i]).clamp(-1, dim - 1),
            )
        };
        let span = if step > 0 { end - start } else { start - end };
        let count = if span <= 0 {
            0
        } else {
            (span + step.abs() - 1) / step.abs()
        };
        plan[axis] = (start, step, count as usize);
    }
    Ok(plan)
}

/// ONNX `Slice` with `starts`, `ends`, `axes` (default: all) and `steps` (default: 1), clamped as
/// the spec says, negative steps included.
pub fn slice(
    input: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Tensor, ShapeError> {
    let rank = input.shape().len();
    let plan = slice_plan(input.shape(), starts, ends, axes, steps)?;
    let shape: Vec<usize> = plan.iter().map(|&(_, _, count)| count).collect();
    let in_strides = strides(input.shape());
    let mut output = Tensor::zeros(shape.clone());
    let mut index = vec![0usize; rank];
    for value in output.data_mut() {
        let offset: i64 = index
            .iter()
            .zip(&plan)
            .zip(&in_strides)
            .map(|((&i, &(start, step, _)), &stride)| (start + i as i64 * step) * stride as i64)
            .sum();
        *value = input.data()[offset as usize];
        advance(&mut index, &shape);
    }
    Ok(output)
}

/// Checks `Gather`'s indices; returns the axis, the indices made non-negative, and the output shape.
pub(crate) fn gather_plan(
    input: &[usize],
    axis: i64,
    indices: &[i64],
    indices_shape: &[usize],
) -> Result<(usize, Vec<usize>, Vec<usize>), ShapeError> {
    let axis = normalize_axis("Gather", axis, input.len())?;
    let len = input[axis];
    if indices.len() != indices_shape.iter().product::<usize>() {
        return Err(shape_error("Gather", "indices do not fill their shape"));
    }
    let resolved = indices
        .iter()
        .map(|&i| {
            let r = if i < 0 { i + len as i64 } else { i };
            usize::try_from(r).ok().filter(|&r| r < len).ok_or_else(|| {
                shape_error(
                    "Gather",
                    format!("index {i} is out of range for axis {axis} of size {len}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut shape = input[..axis].to_vec();
    shape.extend_from_slice(indices_shape);
    shape.extend_from_slice(&input[axis + 1..]);
    Ok((axis, resolved, shape))
}

/// ONNX `Gather` along `axis` with integer `indices` of shape `indices_shape`; negative indices
/// count from the end.
pub fn gather(
    input: &Tensor,
    axis: i64,
    indices: &[i64],
    indices_shape: &[usize],
) -> Result<Tensor, ShapeError> {
    let (axis, resolved, shape) = gather_plan(input.shape(), axis, indices, indices_shape)?;
    let (outer, len, inner) = around_axis(input.shape(), axis);
    let mut data = Vec::with_capacity(outer * resolved.len() * inner);
    for o in 0..outer {
        for &i in &resolved {
            data.extend_from_slice(&input.data()[(o * len + i) * inner..][..inner]);
        }
    }
    Tensor::new(shape, data)
}

/// The output shape of ONNX `Reshape`: `0` copies the input's dimension (unless `allowzero`),
/// one `-1` takes what is left.
pub fn reshape_target(
    input: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, ShapeError> {
    let total: usize = input.iter().product();
    let mut inferred = None;
    let mut shape = Vec::with_capacity(spec.len());
    for (i, &d) in spec.iter().enumerate() {
        shape.push(match d {
            -1 if inferred.is_none() => {
                inferred = Some(i);
                1
            }
            0 if !allowzero => *input.get(i).ok_or_else(|| {
                shape_error("Reshape", format!("0 at axis {i} copies no input axis"))
            })?,
            d if d >= 0 => d as usize,
            _ => return Err(shape_error("Reshape", format!("invalid target {spec:?}"))),
        });
    }
    let known: usize = shape.iter().product();
    if let Some(i) = inferred {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(shape_error(
                "Reshape",
                format!("{input:?} cannot become {spec:?}"),
            ));
        }
        shape[i] = total / known;
    }
    if shape.iter().product::<usize>() != total {
        return Err(shape_error(
            "Reshape",
            format!("{input:?} ({total} values) cannot become {spec:?}"),
        ));
    }
    Ok(shape)
}
