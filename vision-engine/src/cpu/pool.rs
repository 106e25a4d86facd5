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

/// ONNX `MaxPool`, separably: each input row's maximum over the window's columns first, then
/// each output row's over the window's rows of those (`kh + kw` comparisons an output instead of
/// `kh · kw`), each a run of contiguous outputs (strided input for stride > 1) that vectorises.
/// The maximum is the same whatever the order of its taps (up to which zero of a +0/-0 tie).
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
        // Per input row, the maximum over the window's columns of each output column.
        let mut row_maxima = vec![0.0; h * ow];
        for (p, out) in planes.chunks_mut(oh * ow).enumerate() {
            let plane = &input.data()[(first_plane + p) * h * w..][..h * w];
            for (in_row, best_row) in plane.chunks(w).zip(row_maxima.chunks_mut(ow)) {
                best_row.fill(f32::NEG_INFINITY);
                for tap in &column_taps {
                    if tap.inside.is_empty() {
                        continue;
                    }
                    let first = (tap.inside.start * sw) as isize + tap.x_offset;
                    let reads = &in_row[first as usize..];
                    let best = &mut best_row[tap.inside.clone()];
                    if sw == 1 {
                        max_into(best, reads.iter());
                    } else {
                        max_into(best, reads.iter().step_by(sw));
                    }
                }
            }
            for (oy, out_row) in out.chunks_mut(ow).enumerate() {
                out_row.fill(f32::NEG_INFINITY);
                let top = (oy * sh) as isize - pt as isize;
                for (_, best_row) in window_rows(&row_maxima, [h, ow], top, [kh, dh]) {
                    max_into(out_row, best_row.iter());
                }
            }
        }
    });
    Ok(output)
}

/// `best[i] = max(best[i], values[i])`.
#[inline(always)]
fn max_into<'a>(best: &mut [f32], values: impl Iterator<Item = &'a f32>) {
    for (best, &x) in best.iter_mut().zip(values) {
        *best = best.max(x);
    }
}
