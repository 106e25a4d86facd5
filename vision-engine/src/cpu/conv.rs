use std::ops::Range;

use super::activate_in_place;
use crate::Activation;

use super::{
    for_each_row_chunk,
    gemm::{Dense, Init, NC, PackedA, PanelSource, gemm_packed},
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

/// The output columns `ox` in `0..ow` whose input column `ox · stride + x_offset` is inside
/// `0..w` (a window's tap at offset `x_offset` from its output column, padding before it).
fn columns_inside(x_offset: isize, stride: usize, w: usize, ow: usize) -> Range<usize> {
    let from = if x_offset < 0 {
        x_offset.unsigned_abs().div_ceil(stride).min(ow)
    } else {
        0
    };
    let to = ((w as isize - x_offset).max(0) as usize)
        .div_ceil(stride)
        .clamp(from, ow);
    from..to
}

/// One kernel column `kx` of a sliding window over a `w`-wide row: its input column's offset
/// from `ox · stride` (`kx · dw - pl`) and the output columns `ox` whose tap reads inside the row.
/// The same for every row, so computed once per operation ([`column_taps`]): per row and tap, the
/// two divisions of [`columns_inside`] were a few percent of a small layer's time.
#[derive(Debug, Clone)]
pub(super) struct ColumnTap {
    pub x_offset: isize,
    pub inside: Range<usize>,
}

/// [`ColumnTap`] of each of a window's `kw` columns, `dw` apart, its left `pl` columns before
/// `ox · stride`, over rows `w` wide in and `ow` wide out.
pub(super) fn column_taps(
    [kw, dw, pl]: [usize; 3],
    stride: usize,
    w: usize,
    ow: usize,
) -> Vec<ColumnTap> {
    (0..kw)
        .map(|kx| {
            let x_offset = (kx * dw) as isize - pl as isize;
            ColumnTap {
                x_offset,
                inside: columns_inside(x_offset, stride, w, ow),
            }
        })
        .collect()
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
    conv2d_then(input, weight, bias, attrs, None, None)
}

/// [`conv2d`] followed by `activation`, fused: applied to each finished run of outputs while it
/// is in cache; then `residual` added, where given (a shortcut, of the output's shape). Packs the
/// weights on every call; [`PreparedConv`] packs them once.
pub fn conv2d_then(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    attrs: &Conv2d,
    activation: Option<Activation>,
    residual: Option<&Tensor>,
) -> Result<Tensor, ShapeError> {
    PreparedConv::new(input.shape(), weight, bias, attrs, activation)?.run(
        input,
        residual,
        Vec::new(),
    )
}

/// A convolution's residual must have its output's shape (the Add it replaces broadcast nothing).
pub(crate) fn check_residual(output: &[usize], residual: &[usize]) -> Result<(), ShapeError> {
    if residual == output {
        return Ok(());
    }
    Err(shape_error(
        "Conv",
        format!("the residual added to the output {output:?} has shape {residual:?}"),
    ))
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

    /// Runs on `input` (of the shape it was prepared for), adds `residual` (of the output's
    /// shape) where given, and writes the output into `buffer`'s storage (whatever it holds:
    /// every output value is written).
    pub(crate) fn run(
        &self,
        input: &Tensor,
        residual: Option<&Tensor>,
        mut buffer: Vec<f32>,
    ) -> Result<Tensor, ShapeError> {
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
        if let Some(residual) = residual {
            check_residual(&self.output_shape, residual.shape())?;
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
            let column_taps = column_taps(
                [kw, attrs.dilations[1], attrs.pads[1]],
                attrs.strides[1],
                w,
                ow,
            );
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
                            column_taps: &column_taps,
                        };
                        gemm_packed(a, spatial, &patches, out, init, self.activation);
                    }
                }
            }
        }
        if let Some(residual) = residual {
            for (out, r) in buffer.iter_mut().zip(residual.data()) {
                *out += r;
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
    column_taps: &'a [ColumnTap],
}

impl PanelSource for Patches<'_> {
    /// Packs each row of the block (one `(channel, ky, kx)`) into a contiguous line of `nc`
    /// values first, one output row (one input row, zeros at the padded ends) at a time, then
    /// copies the line into the panels `NR` values at a time: the per-panel bookkeeping is then
    /// one fixed-size copy, and the per-output-row work (clamping to the image, the copy) is done
    /// once per output row rather than once per piece of it inside a panel.
    #[inline(always)] // Into the GEMM's loops, to share their vector width.
    fn pack<const NR: usize>(&self, rows: Range<usize>, columns: Range<usize>, dst: &mut [f32]) {
        let [h, w] = self.size;
        let [kh, kw] = self.kernel;
        let [_, ow] = self.output;
        let [sh, sw] = self.attrs.strides;
        let dh = self.attrs.dilations[0];
        let pt = self.attrs.pads[0];
        let kc = rows.len();
        let nc = columns.len();
        debug_assert!(nc <= NC, "a block has at most NC columns");
        // `LINE_SLACK` past the end: the copies below write whole fixed-size pieces, whose
        // overshoot the next output row (or the zeroing of the last panel's tail) overwrites.
        let mut line = [0.0f32; NC + LINE_SLACK];
        let padded = nc.next_multiple_of(NR);
        let (first_oy, first_ox) = (columns.start / ow, columns.start % ow);
        // The block's rows are (channel, ky, kx) in that order, kx fastest: counted, not divided.
        let (mut ch, mut ky, mut kx) = (
            rows.start / (kh * kw),
            rows.start / kw % kh,
            rows.start % kw,
        );
        for p in 0..kc {
            let plane = &self.image[ch * h * w..][..h * w];
            let ColumnTap {
                x_offset,
                inside:
                    Range {
                        start: ox_from,
                        end: ox_to,
                    },
            } = self.column_taps[kx].clone();
            let (mut oy, mut ox) = (first_oy, first_ox);
            let mut j = 0;
            while j < nc {
                // One output row: a fixed input row, read from x = ox·sw + x_offset on.
                let run = (ow - ox).min(nc - j);
                let y = (oy * sh + ky * dh) as isize - pt as isize;
                if (0..h as isize).contains(&y) {
                    // line[j + t] for t in a..b reads the image, the rest of the run padding.
                    let a = ox_from.clamp(ox, ox + run) - ox;
                    let b = ox_to.clamp(ox, ox + run) - ox;
                    if a > 0 {
                        zero_short(&mut line, j, a);
                    }
                    if a < b {
                        let first = y as usize * w + (((ox + a) * sw) as isize + x_offset) as usize;
                        let from = &plane[first..];
                        let (to, len) = (j + a, b - a);
                        let out = &mut line[to..to + len];
                        match sw {
                            1 => copy_in_pieces(&mut line[to..], from, len),
                            2 => copy_every_second(out, from),
                            _ => {
                                for (value, &x) in out.iter_mut().zip(from.iter().step_by(sw)) {
                                    *value = x;
                                }
                            }
                        }
                    }
                    if b < run {
                        zero_short(&mut line, j + b, run - b);
                    }
                } else {
                    line[j..j + run].fill(0.0);
                }
                j += run;
                ox = 0;
                oy += 1;
            }
            // The last panel's columns past the end are zeros.
            if padded > nc {
                line[nc..padded].fill(0.0);
            }
            for (panel, values) in line[..padded].as_chunks::<NR>().0.iter().enumerate() {
                let out = &mut dst[panel * kc * NR + p * NR..][..NR];
                *<&mut [f32; NR]>::try_from(out).expect("NR values") = *values;
            }
            kx += 1;
            if kx == kw {
                kx = 0;
                ky += 1;
                if ky == kh {
                    ky = 0;
                    ch += 1;
                }
            }
        }
    }
}

/// Room past a packed line's `NC` values for what [`copy_in_pieces`] and [`zero_short`] overshoot.
const LINE_SLACK: usize = 32;

/// `line[..len] = from[..len]`, writing up to 15 values more (the caller overwrites them): in
/// whole 16-value pieces, with no call out of wasm (`memory.copy`, which V8 makes a call to C
/// for: once per output row longer than 32 values, about 1% of an inference).
#[inline(always)]
fn copy_in_pieces(line: &mut [f32], from: &[f32], len: usize) {
    let pieces = len.div_ceil(PIECE);
    let (line_pieces, _) = line.as_chunks_mut::<PIECE>();
    let (from_pieces, _) = from.as_chunks::<PIECE>();
    if from_pieces.len() >= pieces && line_pieces.len() >= pieces {
        for (out, values) in line_pieces[..pieces].iter_mut().zip(from_pieces) {
            *out = *values;
        }
    } else {
        line[..len].copy_from_slice(&from[..len]);
    }
}

/// The values [`copy_in_pieces`] moves at once.
const PIECE: usize = 16;

/// `out[t] = from[2t]` (a stride-2 convolution's row): eight values from each sixteen as
/// fixed-size arrays, which become vector shuffles; one at a time, this was 4% of a one-thread run.
#[inline(always)]
fn copy_every_second(out: &mut [f32], from: &[f32]) {
    let (chunks, _) = out.as_chunks_mut::<8>();
    let whole = chunks.len().min(from.len() / 16);
    for (chunk, pairs) in chunks[..whole].iter_mut().zip(from.as_chunks::<16>().0) {
        *chunk = std::array::from_fn(|t| pairs[2 * t]);
    }
    for (value, &x) in out[whole * 8..]
        .iter_mut()
        .zip(from[whole * 16..].iter().step_by(2))
    {
        *value = x;
    }
}

/// `line[at..at + len] = 0`, writing up to 4 values more when `len` ≤ 4 (padding is short).
#[inline(always)]
fn zero_short(line: &mut [f32], at: usize, len: usize) {
    if len <= 4 {
        *<&mut [f32; 4]>::try_from(&mut line[at..at + 4]).expect("4 values") = [0.0; 4];
    } else {
        line[at..at + len].fill(0.0);
    }
}

/// The rows of a sliding window over a `[h, w]` plane that are inside it, in window order: the
/// window's top at input row `top` (`oy · stride - top pad`), its `kh` rows `dh` apart. Each row
/// as (its `ky`, its input row); with [`column_taps`], a window's taps in window order.
pub(super) fn window_rows(
    plane: &[f32],
    [h, w]: [usize; 2],
    top: isize,
    [kh, dh]: [usize; 2],
) -> impl Iterator<Item = (usize, &[f32])> {
    (0..kh).filter_map(move |ky| {
        let y = top + (ky * dh) as isize;
        (0..h as isize)
            .contains(&y)
            .then(|| (ky, &plane[y as usize * w..][..w]))
    })
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
    let column_taps = column_taps([kw, dw, pl], sw, w, ow);
    for_each_row_chunk(output, oh * ow, |first_plane, planes| {
        for (i, plane) in planes.chunks_mut(oh * ow).enumerate() {
            // Planes run over batch × channel; the channel picks the weights and bias.
            let plane_index = first_plane + i;
            let channel = plane_index % c;
            let image = &input[plane_index * h * w..][..h * w];
            plane.fill(bias.map_or(0.0, |b| b[channel]));
            let kernel = &weight[channel * kh * kw..][..kh * kw];
            for (oy, out_row) in plane.chunks_mut(ow).enumerate() {
                let top = (oy * sh) as isize - pt as isize;
                for (ky, in_row) in window_rows(image, [h, w], top, [kh, dh]) {
                    for (kx, tap) in column_taps.iter().enumerate() {
                        let k_value = kernel[ky * kw + kx];
                        for ox in tap.inside.clone() {
                            let x = (ox * sw) as isize + tap.x_offset;
                            out_row[ox] += k_value * in_row[x as usize];
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
                    conv.run(&x, None, stale).unwrap(),
                    expected,
                    "{input:?} {weight:?}"
                );
            }
            let silu = PreparedConv::new(&input, &w, Some(&b), &attrs, Some(Activation::Silu));
            let activated = silu.unwrap().run(&x, None, Vec::new()).unwrap();
            for (a, e) in activated.data().iter().zip(expected.data()) {
                assert!((a - Activation::Silu.apply(*e)).abs() <= 1e-5, "{a} vs {e}");
            }
        }
    }
}
