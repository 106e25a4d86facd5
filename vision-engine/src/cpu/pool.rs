use super::{
    conv::{column_taps, output_size, window_rows},
    for_each_row_chunk,
};
use crate::tensor::{ShapeError, Tensor, shape_error};

/// ONNX `MaxPool` attributes for 2-D inputs (`ceil_mode` 0; padding never wins a maximum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
}

/// Checks a max pool's attributes against its input and returns the output shape.
pub(crate) fn max_pool2d_output_shape(
    input: &[usize],
    attrs: &MaxPool2d,
) -> Result<[usize; 4], ShapeError> {
    let &[n, c, h, w] = input else {
        return Err(shape_error(
            "MaxPool",
            format!("input must be NCHW, got {input:?}"),
        ));
    };
    let [kh, kw] = attrs.kernel;
    let [pt, pl, pb, pr] = attrs.pads;
    // ONNX requires pads smaller than the kernel: otherwise a window could hold only padding.
    let valid = kh > 0
        && kw > 0
        && attrs.dilations[0] > 0
        && attrs.dilations[1] > 0
        && pt.max(pb) < kh
        && pl.max(pr) < kw;
    if !valid {
        return Err(shape_error(
            "MaxPool",
            format!(
                "invalid kernel {:?}, pads {:?} or dilations {:?}",
                attrs.kernel, attrs.pads, attrs.dilations
            ),
        ));
    }
    let [sh, sw] = attrs.strides;
    let [dh, dw] = attrs.dilations;
    match (
        output_size(h, kh, sh, dh, pt, pb),
        output_size(w, kw, sw, dw, pl, pr),
    ) {
        (Some(oh), Some(ow)) => Ok([n, c, oh, ow]),
        _ => Err(shape_error(
            "MaxPool",
            format!("kernel {kh}x{kw} does not fit input {h}x{w}"),
        )),
    }
}

/// ONNX `MaxPool`, an output row at a time: for each tap of the window, the maximum so far of
/// the row's outputs that read inside the image, taken over contiguous input (strided for
/// stride > 1) so that it vectorises. Each output still takes its taps in window order.
pub fn max_pool2d(input: &Tensor, attrs: &MaxPool2d) -> Result<Tensor, ShapeError> {
    let [n, c, oh, ow] = max_pool2d_output_shape(input.shape(), attrs)?;
    let &[_, _, h, w] = input.shape() else {
        unreachable!("checked NCHW")
    };
    let [sh, sw] = attrs.strides;
    let (pt, pl) = (attrs.pads[0], attrs.pads[1]);
    let [kh, kw] = attrs.kernel;
    let [dh, dw] = attrs.dilations;
    let column_taps = column_taps([kw, dw, pl], sw, w, ow);
    let mut output = Tensor::zeros(vec![n, c, oh, ow]);
    for_each_row_chunk(output.data_mut(), oh * ow, |first_plane, planes| {
        for (p, out) in planes.chunks_mut(oh * ow).enumerate() {
            let plane = &input.data()[(first_plane + p) * h * w..][..h * w];
            for (oy, out_row) in out.chunks_mut(ow).enumerate() {
                out_row.fill(f32::NEG_INFINITY);
                let top = (oy * sh) as isize - pt as isize;
                for ((_, in_row), tap) in window_rows(plane, [h, w], top, [kh, dh])
                    .flat_map(|row| column_taps.iter().map(move |tap| (row, tap)))
                {
                    if tap.inside.is_empty() {
                        continue;
                    }
                    let first = (tap.inside.start * sw) as isize + tap.x_offset;
                    let reads = &in_row[first as usize..];
                    let best = &mut out_row[tap.inside.clone()];
                    if sw == 1 {
                        for (best, &x) in best.iter_mut().zip(reads) {
                            *best = best.max(x);
                        }
                    } else {
                        for (best, &x) in best.iter_mut().zip(reads.iter().step_by(sw)) {
                            *best = best.max(x);
                        }
                    }
                }
            }
        }
    });
    Ok(output)
}
