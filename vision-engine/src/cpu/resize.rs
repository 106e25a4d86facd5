use crate::tensor::{ShapeError, Tensor, shape_error, strides};

/// How an output coordinate maps back to the input (ONNX `coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinateTransform {
    /// `x_in = x_out / scale`: what Ultralytics exports use.
    Asymmetric,
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
}

/// How a fractional input coordinate picks a pixel (ONNX `nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestRounding {
    Floor,
    Ceil,
    RoundPreferFloor,
    RoundPreferCeil,
}

fn source_index(
    out: usize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    transform: CoordinateTransform,
    rounding: NearestRounding,
) -> usize {
    let x = out as f64;
    let original = match transform {
        CoordinateTransform::Asymmetric => x / scale,
        CoordinateTransform::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordinateTransform::PytorchHalfPixel if out_len > 1 => (x + 0.5) / scale - 0.5,
        CoordinateTransform::PytorchHalfPixel => 0.0,
        CoordinateTransform::AlignCorners if out_len > 1 => {
            x * (in_len as f64 - 1.0) / (out_len as f64 - 1.0)
        }
        CoordinateTransform::AlignCorners => 0.0,
    };
    let picked = match rounding {
        NearestRounding::Floor => original.floor(),
        NearestRounding::Ceil => original.ceil(),
        NearestRounding::RoundPreferFloor if original.fract() == 0.5 => original.floor(),
        NearestRounding::RoundPreferCeil if original.fract() == 0.5 => original.ceil(),
        NearestRounding::RoundPreferFloor | NearestRounding::RoundPreferCeil => original.round(),
    };
    picked.clamp(0.0, in_len as f64 - 1.0) as usize
}

/// For each axis, the input index every output index reads: the whole of nearest-neighbour
/// resizing, shared by every backend so they pick the same pixels.
pub(crate) fn resize_maps(
    in_shape: &[usize],
    output_shape: &[usize],
    scales: Option<&[f32]>,
    transform: CoordinateTransform,
    rounding: NearestRounding,
) -> Result<Vec<Vec<usize>>, ShapeError> {
    if output_shape.len() != in_shape.len() || scales.is_some_and(|s| s.len() != in_shape.len()) {
        return Err(shape_error(
            "Resize",
            format!(
                "input {in_shape:?}, output {output_shape:?} and scales {scales:?} differ in rank"
            ),
        ));
    }
    if in_shape.contains(&0) && !output_shape.contains(&0) {
        return Err(shape_error(
            "Resize",
            "cannot resize an empty tensor to a non-empty one",
        ));
    }
    Ok((0..in_shape.len())
        .map(|axis| {
            let scale = scales.map_or(output_shape[axis] as f64 / in_shape[axis] as f64, |s| {
                f64::from(s[axis])
            });
            (0..output_shape[axis])
                .map(|o| {
                    source_index(
                        o,
                        in_shape[axis],
                        output_shape[axis],
                        scale,
                        transform,
                        rounding,
                    )
                })
                .collect()
        })
        .collect())
}

/// ONNX `Resize` with `mode = nearest` to `output_shape` (same rank as the input). `scales` are
/// the ONNX scales when the model gave them, else `output / input` per axis.
pub fn resize_nearest(
    input: &Tensor,
    output_shape: &[usize],
    scales: Option<&[f32]>,
    transform: CoordinateTransform,
    rounding: NearestRounding,
) -> Result<Tensor, ShapeError> {
    let in_shape = input.shape();
    let maps = resize_maps(in_shape, output_shape, scales, transform, rounding)?;
    let in_strides = strides(in_shape);
    let Some((column_map, outer_maps)) = maps.split_last() else {
        return Ok(input.clone()); // A scalar.
    };
    let (outer_shape, in_row_len) = (
        &output_shape[..outer_maps.len()],
        in_shape[outer_maps.len()],
    );
    // Output row by output row: the input row found once per row, then one read per value.
    let mut data = Vec::with_capacity(output_shape.iter().product());
    let mut index = vec![0usize; outer_shape.len()];
    for _ in 0..outer_shape.iter().product::<usize>() {
        let first: usize = index
            .iter()
            .zip(outer_maps)
            .zip(&in_strides)
            .map(|((&i, map), stride)| map[i] * stride)
            .sum();
        let in_row = &input.data()[first..][..in_row_len];
        data.extend(column_map.iter().map(|&x| in_row[x]));
        advance(&mut index, outer_shape);
    }
    Tensor::new(output_shape.to_vec(), data)
}

/// Steps a row-major multi-index by one element.
pub(crate) fn advance(index: &mut [usize], shape: &[usize]) {
    for axis in (0..index.len()).rev() {
        index[axis] += 1;
        if index[axis] < shape[axis] {
            return;
        }
        index[axis] = 0;
    }
}
