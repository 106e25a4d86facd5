use super::gemm;
use crate::tensor::{ShapeError, Tensor, shape_error};

/// Convolution attributes, as ONNX `Conv` has them for 2-D inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv2d {
    pub strides: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Self {
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            group: 1,
        }
    }
}

/// Output size of one spatial dimension, or None when the kernel does not fit.
pub(crate) fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad_begin + pad_end;
    (stride > 0 && padded >= span).then(|| (padded - span) / stride + 1)
}

/// Checks a convolution's operands and returns its output shape `[N, M, OH, OW]`.
pub(crate) fn conv2d_output_shape(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    attrs: &Conv2d,
) -> Result<[usize; 4], ShapeError> {
    let &[n, c, h, w] = input else {
        return Err(shape_error(
            "Conv",
            format!("input must be NCHW, got {input:?}"),
        ));
    };
    let &[m, c_per_group, kh, kw] = weight else {
        return Err(shape_error(
            "Conv",
            format!("weight must be [M, C/group, kH, kW], got {weight:?}"),
        ));
    };
    let g = attrs.group;
    if g == 0 || c % g != 0 || m % g != 0 || c / g != c_per_group || kh == 0 || kw == 0 {
        return Err(shape_error(
            "Conv",
            format!("input {input:?} and weight {weight:?} do not fit group {g}"),
        ));
    }
    if let Some(b) = bias
        && b != [m]
    {
        return Err(shape_error(
            "Conv",
            format!("bias must be [{m}], got {b:?}"),
        ));
    }
    let [sh, sw] = attrs.strides;
    let [dh, dw] = attrs.dilations;
    let [pt, pl, pb, pr] = attrs.pads;
    match (
        output_size(h, kh, sh, dh, pt, pb),
        output_size(w, kw, sw, dw, pl, pr),
    ) {
        (Some(oh), Some(ow)) if dh > 0 && dw > 0 => Ok([n, m, oh, ow]),
        _ => Err(shape_error(
            "Conv",
            format!(
                "kernel {kh}x{kw} does not fit input {h}x{w} with the given pads, strides and dilations"
            ),
        )),
    }
}

/// ONNX `Conv` on NCHW input with weight `[M, C / group, kH, kW]` and optional bias `[M]`.
///
/// Each group is one GEMM, `W_g[M/g × C/g·kH·kW] · columns[C/g·kH·kW × OH·OW]`; a 1×1 convolution
/// with unit stride and no padding reads the input as its columns directly (the YOLO necks are
/// mostly those).
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    attrs: &Conv2d,
) -> Result<Tensor, ShapeError> {
    let [n, m, oh, ow] = conv2d_output_shape(
        input.shape(),
        weight.shape(),
        bias.map(Tensor::shape),
        attrs,
    )?;
    let &[_, c, h, w] = input.shape() else {
        unreachable!("checked NCHW")
    };
    let &[_, c_per_group, kh, kw] = weight.shape() else {
        unreachable!("checked rank 4")
    };
    let g = attrs.group;
    let m_per_group = m / g;
    let k = c_per_group * kh * kw;
    let spatial = oh * ow;
    let direct = kh == 1 && kw == 1 && attrs.strides == [1, 1] && attrs.pads == [0; 4];
    let mut output = Tensor::zeros(vec![n, m, oh, ow]);
    let mut columns = if direct {
        Vec::new()
    } else {
        vec![0.0; k * spatial]
    };

    for batch in 0..n {
        for group in 0..g {
            let channels = batch * c + group * c_per_group;
            let image = &input.data()[channels * h * w..][..c_per_group * h * w];
            let b_matrix: &[f32] = if direct {
                image
            } else {
                im2col(
                    image,
                    [c_per_group, h, w],
                    [kh, kw],
                    attrs,
                    [oh, ow],
                    &mut columns,
                );
                &columns
            };
            let first_out = (batch * m + group * m_per_group) * spatial;
            let out = &mut output.data_mut()[first_out..][..m_per_group * spatial];
            if let Some(bias) = bias {
                for (row, &b) in out
                    .chunks_mut(spatial)
                    .zip(&bias.data()[group * m_per_group..])
                {
                    row.fill(b);
                }
            }
            let a_matrix = &weight.data()[group * m_per_group * k..][..m_per_group * k];
            gemm(
                m_per_group,
                spatial,
                k,
                a_matrix,
                b_matrix,
                out,
                bias.is_some(),
            );
        }
    }
    Ok(output)
}

/// Unfolds the receptive fields of `image` (`[C, H, W]`) into `columns` (`[C·kH·kW, OH·OW]`),
/// writing zeros where the kernel reads padding.
fn im2col(
    image: &[f32],
    [c, h, w]: [usize; 3],
    [kh, kw]: [usize; 2],
    attrs: &Conv2d,
    [oh, ow]: [usize; 2],
    columns: &mut [f32],
) {
    let [sh, sw] = attrs.strides;
    let [dh, dw] = attrs.dilations;
    let (pt, pl) = (attrs.pads[0], attrs.pads[1]);
    let mut rows = columns.chunks_mut(oh * ow);
    for ch in 0..c {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = rows.next().expect("columns has C·kH·kW rows");
                for oy in 0..oh {
                    let y = (oy * sh + ky * dh) as isize - pt as isize;
                    let out_row = &mut row[oy * ow..][..ow];
                    if y < 0 || y >= h as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let in_row = &image[(ch * h + y as usize) * w..][..w];
                    for (ox, value) in out_row.iter_mut().enumerate() {
                        let x = (ox * sw + kx * dw) as isize - pl as isize;
                        *value = if x < 0 || x >= w as isize {
                            0.0
                        } else {
                            in_row[x as usize]
                        };
                    }
                }
            }
        }
    }
}
