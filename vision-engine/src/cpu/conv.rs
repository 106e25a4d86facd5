use std::ops::Range;

use super::activate_in_place;
use crate::Activation;

use super::{
    for_each_row_chunk,
    gemm::{Dense, Init, PackedA, PanelSource, gemm_packed},
};
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
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    attrs: &Conv2d,
) -> Result<Tensor, ShapeError> {
    conv2d_then(input, weight, bias, attrs, None)
}

/// [`conv2d`] followed by `activation`, fused: applied to each finished run of outputs while it
/// is in cache. Packs the weights on every call; [`PreparedConv`] packs them once.
pub fn conv2d_then(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    attrs: &Conv2d,
    activation: Option<Activation>,
) -> Result<Tensor, ShapeError> {
    PreparedConv::new(input.shape(), weight, bias, attrs, activation)?.run(input, Vec::new())
}

/// One convolution (and its fused activation) with its weights ready for the loops below.
///
/// Each group is one GEMM, `W_g[M/g × C/g·kH·kW] · columns[C/g·kH·kW × OH·OW]`, whose columns are
/// unfolded from the image straight into the GEMM's packed panels; a 1×1 convolution with unit
/// stride and no padding reads the image as its columns. Depthwise convolutions (one input
/// channel per output channel) run as direct loops instead: a GEMM with one row wastes its tile.
#[derive(Debug, Clone)]
pub(crate) struct PreparedConv<'a> {
    weight: &'a Tensor,
    bias: Option<&'a Tensor>,
    attrs: &'a Conv2d,
    activation: Option<Activation>,
    /// The shape of the input it was prepared for, and of its output.
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    /// Each group's weights packed as the GEMM's `A`; empty for a depthwise convolution.
    packed_groups: Vec<PackedA>,
}

impl<'a> PreparedConv<'a> {
    /// Checks the operands against an input of `input_shape` and packs the weights.
    pub(crate) fn new(
        input_shape: &[usize],
        weight: &'a Tensor,
        bias: Option<&'a Tensor>,
        attrs: &'a Conv2d,
        activation: Option<Activation>,
    ) -> Result<Self, ShapeError> {
        let output_shape =
            conv2d_output_shape(input_shape, weight.shape(), bias.map(Tensor::shape), attrs)?;
        let input_shape: [usize; 4] = input_shape.try_into().expect("checked NCHW");
        let &[m, c_per_group, kh, kw] = weight.shape() else {
            unreachable!("checked rank 4")
        };
        let g = attrs.group;
        let depthwise = g > 1 && c_per_group == 1 && m == g;
        let k = c_per_group * kh * kw;
        let packed_groups = if depthwise {
            Vec::new()
        } else {
            weight
                .data()
                .chunks_exact(m / g * k)
                .map(|a| PackedA::new(m / g, k, a))
                .collect()
        };
        Ok(Self {
            weight,
            bias,
            attrs,
            activation,
            input_shape,
            output_shape,
            packed_groups,
        })
    }

    /// Values in the output.
    pub(crate) fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }

    /// Runs on `input` (of the shape it was prepared for), writing the output into `buffer`'s
    /// storage (whatever it holds: every output value is written).
    pub(crate) fn run(&self, input: &Tensor, mut buffer: Vec<f32>) -> Result<Tensor, ShapeError> {
        if input.shape() != self.input_shape {
            return Err(shape_error(
                "Conv",
                format!(
                    "prepared for input {:?}, got {:?}",
                    self.input_shape,
                    input.shape()
                ),
            ));
        }
        let [n, c, h, w] = self.input_shape;
        let [_, m, oh, ow] = self.output_shape;
        let &[_, c_per_group, kh, kw] = self.weight.shape() else {
            unreachable!("checked rank 4")
        };
        buffer.resize(self.output_len(), 0.0);
        let attrs = self.attrs;
        let bias = self.bias.map(Tensor::data);
        if self.packed_groups.is_empty() {
            depthwise(
                input.data(),
                self.weight.data(),
                bias,
                [c, h, w],
                [kh, kw],
                attrs,
                [oh, ow],
                &mut buffer,
                self.activation,
            );
        } else {
            let g = attrs.group;
            let m_per_group = m / g;
            let spatial = oh * ow;
            let direct = kh == 1 && kw == 1 && attrs.strides == [1, 1] && attrs.pads == [0; 4];
            for batch in 0..n {
                for (group, a) in self.packed_groups.iter().enumerate() {
                    let channels = batch * c + group * c_per_group;
                    let image = &input.data()[channels * h * w..][..c_per_group * h * w];
                    let first_out = (batch * m + group * m_per_group) * spatial;
                    let out = &mut buffer[first_out..][..m_per_group * spatial];
                    let init = match bias {
                        Some(bias) => Init::RowBias(&bias[group * m_per_group..][..m_per_group]),
                        None => Init::Zero,
                    };
                    if direct {
                        let columns = Dense {
                            b: image,
                            n: spatial,
                        };
                        gemm_packed(a, spatial, &columns, out, init, self.activation);
                    } else {
                        let patches = Patches {
                            image,
                            size: [h, w],
                            kernel: [kh, kw],
                            attrs,
                            output: [oh, ow],
                        };
                        gemm_packed(a, spatial, &patches, out, init, self.activation);
                    }
                }
            }
        }
        Ok(Tensor::new(self.output_shape.to_vec(), buffer).expect("sized to the output"))
    }
}

/// The receptive fields of one group's image (`[C, H, W]`), read as the `C·kH·kW` × `OH·OW`
/// matrix im2col would build, with zeros where the kernel reads padding.
struct Patches<'a> {
    image: &'a [f32],
    size: [usize; 2],
    kernel: [usize; 2],
    attrs: &'a Conv2d,
    output: [usize; 2],
}

impl PanelSource for Patches<'_> {
    #[inline(always)] // Into the GEMM's loops, to share their vector width.
    fn pack<const NR: usize>(&self, rows: Range<usize>, columns: Range<usize>, dst: &mut [f32]) {
        let [h, w] = self.size;
        let [kh, kw] = self.kernel;
        let [_, ow] = self.output;
        let [sh, sw] = self.attrs.strides;
        let [dh, dw] = self.attrs.dilations;
        let (pt, pl) = (self.attrs.pads[0], self.attrs.pads[1]);
        let kc = rows.len();
        // Zero the last panel's columns past the end.
        let nc = columns.len();
        if !nc.is_multiple_of(NR) {
            let last_panel = &mut dst[nc / NR * kc * NR..][..kc * NR];
            for panel_row in last_panel.as_chunks_mut::<NR>().0 {
                panel_row[nc % NR..].fill(0.0);
            }
        }
        for (p, row) in rows.enumerate() {
            let (ch, ky, kx) = (row / (kh * kw), row / kw % kh, row % kw);
            let x_offset = (kx * dw) as isize - pl as isize;
            let (mut oy, mut ox) = (columns.start / ow, columns.start % ow);
            let mut j = 0;
            while j < nc {
                // One output row: a fixed input row, read from x = ox·sw + x_offset on.
                let run = (ow - ox).min(nc - j);
                let y = (oy * sh + ky * dh) as isize - pt as isize;
                let in_row = (0..h as isize)
                    .contains(&y)
                    .then(|| &self.image[(ch * h + y as usize) * w..][..w]);
                // In pieces that stay inside one panel, where they are contiguous.
                let mut t = 0;
                while t < run {
                    let column = j + t;
                    let lane = column % NR;
                    let len = (NR - lane).min(run - t);
                    let out = &mut dst[(column / NR) * kc * NR + p * NR + lane..][..len];
                    let x_first = ((ox + t) * sw) as isize + x_offset;
                    match in_row {
                        None => out.fill(0.0),
                        Some(in_row) => fill_row_piece::<NR>(out, in_row, x_first, sw),
                    }
                    t += len;
                }
                j += run;
                ox = 0;
                oy += 1;
            }
        }
    }
}

/// `out[i] = in_row[x_first + i·stride]`, zero where that falls in the padding: the padded ends
/// are filled apart, so the interior copies without a bounds check per value.
#[inline(always)] // Into the packing loop, whose vector width it shares.
fn fill_row_piece<const NR: usize>(out: &mut [f32], in_row: &[f32], x_first: isize, stride: usize) {
    let w = in_row.len() as isize;
    // The pieces' first and end indices inside the image: x_first + i·stride in 0..w.
    let inside_from = if x_first < 0 {
        x_first.unsigned_abs().div_ceil(stride).min(out.len())
    } else {
        0
    };
    let inside_to = ((w - x_first).max(0) as usize)
        .div_ceil(stride)
        .clamp(inside_from, out.len());
    let (before, rest) = out.split_at_mut(inside_from);
    let (inside, after) = rest.split_at_mut(inside_to - inside_from);
    before.fill(0.0);
    after.fill(0.0);
    if inside.is_empty() {
        return;
    }
    let from = &in_row[(x_first + (inside_from * stride) as isize) as usize..];
    if stride == 1 {
        let from = &from[..inside.len()];
        // A whole panel row: a fixed-size copy, i.e. vector moves, no memcpy call.
        match <&mut [f32; NR]>::try_from(&mut *inside) {
            Ok(whole) => *whole = *<&[f32; NR]>::try_from(from).expect("same length"),
            Err(_) => inside.copy_from_slice(from),
        }
    } else {
        for (value, &x) in inside.iter_mut().zip(from.iter().step_by(stride)) {
            *value = x;
        }
    }
}

/// Depthwise convolution: each output channel convolves its own input channel; channels are
/// spread over the cores.
#[allow(clippy::too_many_arguments)] // The convolution's operands and sizes, one each.
fn depthwise(
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    [c, h, w]: [usize; 3],
    [kh, kw]: [usize; 2],
    attrs: &Conv2d,
    [oh, ow]: [usize; 2],
    output: &mut [f32],
    activation: Option<Activation>,
) {
    let [sh, sw] = attrs.strides;
    let [dh, dw] = attrs.dilations;
    let (pt, pl) = (attrs.pads[0], attrs.pads[1]);
    for_each_row_chunk(output, oh * ow, |first_plane, planes| {
        for (i, plane) in planes.chunks_mut(oh * ow).enumerate() {
            // Planes run over batch × channel; the channel picks the weights and bias.
            let plane_index = first_plane + i;
            let channel = plane_index % c;
            let image = &input[plane_index * h * w..][..h * w];
            plane.fill(bias.map_or(0.0, |b| b[channel]));
            let kernel = &weight[channel * kh * kw..][..kh * kw];
            for (oy, out_row) in plane.chunks_mut(ow).enumerate() {
                for ky in 0..kh {
                    let y = (oy * sh + ky * dh) as isize - pt as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    let in_row = &image[y as usize * w..][..w];
                    for kx in 0..kw {
                        let k_value = kernel[ky * kw + kx];
                        for (ox, out) in out_row.iter_mut().enumerate() {
                            let x = (ox * sw + kx * dw) as isize - pl as isize;
                            if x >= 0 && x < w as isize {
                                *out += k_value * in_row[x as usize];
                            }
                        }
                    }
                }
                if let Some(activation) = activation {
                    activate_in_place(activation, out_row);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{Conv2d, PreparedConv, conv2d};
    use crate::{Activation, Tensor};

    fn values(shape: &[usize], seed: usize) -> Tensor {
        let len = shape.iter().product();
        let data = (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    /// A prepared convolution writes every output value: run on storage full of NaN (as a
    /// reused buffer may hold anything), twice, it gives exactly what `conv2d` gives.
    #[test]
    fn a_prepared_convolution_overwrites_whatever_its_buffer_held() {
        // (input, weight, attributes): GEMM with padding, stride and dilation; grouped; depthwise.
        let cases = [
            ([1, 4, 9, 21], [6, 4, 3, 3], [2, 1], [1, 2, 0, 1], 2, 1),
            ([2, 6, 8, 19], [4, 3, 3, 3], [1, 1], [1; 4], 1, 2),
            ([1, 5, 7, 18], [5, 1, 3, 3], [2, 2], [1; 4], 1, 5),
        ];
        for (input, weight, strides, pads, dilation, group) in cases {
            let (x, w, b) = (
                values(&input, 1),
                values(&weight, 2),
                values(&[weight[0]], 3),
            );
            let attrs = Conv2d {
                strides,
                pads,
                dilations: [dilation; 2],
                group,
            };
            let expected = conv2d(&x, &w, Some(&b), &attrs).unwrap();
            let conv = PreparedConv::new(&input, &w, Some(&b), &attrs, None).unwrap();
            for _ in 0..2 {
                let stale = vec![f32::NAN; conv.output_len()];
                assert_eq!(
                    conv.run(&x, stale).unwrap(),
                    expected,
                    "{input:?} {weight:?}"
                );
            }
            let silu = PreparedConv::new(&input, &w, Some(&b), &attrs, Some(Activation::Silu));
            let activated = silu.unwrap().run(&x, Vec::new()).unwrap();
            for (a, e) in activated.data().iter().zip(expected.data()) {
                assert!((a - Activation::Silu.apply(*e)).abs() <= 1e-5, "{a} vs {e}");
            }
        }
    }
}
