//! What the GPU runs for each op: a list of kernel launches over abstract bindings, computed from
//! shapes alone. The per-op executor and the resident network executor bind them to buffers.

use super::MAX_RANK;
use crate::{
    Activation, EngineError, ShapeError,
    cpu::{self, BinaryOp, MatmulPlan, broadcast_strides},
    f16::f32_to_f16,
    graph::Op,
    letterbox::Letterbox,
    tensor::{Tensor, shape_error, strides},
};
use kernels::Kernel;

/// Where a launch reads or writes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Binding {
    /// The op's i-th operand.
    Input(usize),
    /// A constant of the network (weights, biases).
    Constant(usize),
    /// Small data the plan made (gather indices, resize maps), uploaded with the launch.
    Aux(Vec<u32>),
    /// The op's i-th output.
    Output(usize),
    /// A 4-byte stand-in for an absent optional input (a convolution without bias).
    Absent,
    /// f32 scratch memory (`OpPlan::scratch_bytes`) that one launch of the op writes and a later
    /// one reads: split-k partial sums. Ops run one after another, so all share one buffer.
    Scratch,
}

#[derive(Debug, Clone)]
pub(super) struct Launch {
    pub kernel: Kernel,
    pub entry: &'static str,
    pub inputs: Vec<Binding>,
    pub output: Binding,
    /// Uniform words, laid out as the kernel's `Params` struct.
    pub params: Vec<u32>,
    /// Words of `params` that hold an element offset into a binding's buffer: a resident network
    /// adds the offset at which it placed that value (a slice of a Concat's output). A launch
    /// reads or writes a placed value only where it lists the binding here.
    pub offsets: Vec<(Binding, usize)>,
    pub grid: Grid,
}

/// How many invocations a launch runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Grid {
    /// One invocation per element, in workgroups of `ELEMENTWISE_WORKGROUP_SIZE`; 0 runs nothing.
    Elements(usize),
    /// Workgroups counted by the kernel's own tiling.
    Workgroups([u32; 3]),
}

impl Grid {
    pub fn is_empty(&self) -> bool {
        match *self {
            Grid::Elements(count) => count == 0,
            Grid::Workgroups(groups) => groups.contains(&0),
        }
    }

    /// Workgroup counts within the per-dimension limit: a long one-dimensional grid spills into y.
    pub fn workgroups(&self, max_per_dimension: u32) -> [u32; 3] {
        match *self {
            Grid::Elements(count) => {
                let groups = count
                    .div_ceil(kernels::ELEMENTWISE_WORKGROUP_SIZE as usize)
                    .max(1) as u32;
                if groups <= max_per_dimension {
                    [groups, 1, 1]
                } else {
                    [max_per_dimension, groups.div_ceil(max_per_dimension), 1]
                }
            }
            Grid::Workgroups(groups) => groups,
        }
    }
}

/// The output shapes of an op and the launches that compute them.
#[derive(Debug)]
pub(super) struct OpPlan {
    pub outputs: Vec<Vec<usize>>,
    pub launches: Vec<Launch>,
    /// Set for ops that only rename their input's values (Reshape): output 0 is input 0's buffer.
    pub aliases_input: bool,
    /// Bytes of [`Binding::Scratch`] the launches use (0: none).
    pub scratch_bytes: u64,
}

/// Uniform contents as 32-bit words: scalars in groups of four, then 8-wide arrays.
#[derive(Default)]
struct Params(Vec<u32>);

impl Params {
    fn words(mut self, words: &[u32]) -> Self {
        self.0.extend_from_slice(words);
        self
    }

    fn array8(mut self, values: impl IntoIterator<Item = u32>) -> Self {
        let start = self.0.len();
        self.0.extend(values);
        assert!(
            self.0.len() - start <= MAX_RANK,
            "checked against MAX_RANK before"
        );
        self.0.resize(start + MAX_RANK, 0);
        self
    }
}

fn to_u32(op: &'static str, value: usize) -> Result<u32, ShapeError> {
    u32::try_from(value)
        .map_err(|_| shape_error(op, format!("{value} does not fit the GPU's 32-bit indices")))
}

fn check_rank(op: &'static str, rank: usize) -> Result<(), ShapeError> {
    if rank > MAX_RANK {
        return Err(shape_error(
            op,
            format!("rank {rank} is above the GPU backend's {MAX_RANK}"),
        ));
    }
    Ok(())
}

fn words(op: &'static str, values: &[usize]) -> Result<Vec<u32>, ShapeError> {
    values.iter().map(|&v| to_u32(op, v)).collect()
}

/// The `steps` and `pads` vec4s of the windowed kernels (conv2d, max_pool): strides and
/// dilations, then the top and left padding.
fn window_words(
    op: &'static str,
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
) -> Result<Vec<u32>, ShapeError> {
    words(
        op,
        &[
            strides[0],
            strides[1],
            dilations[0],
            dilations[1],
            pads[0],
            pads[1],
            0,
            0,
        ],
    )
}

fn activation_code(activation: Option<Activation>) -> u32 {
    match activation {
        None => 0,
        Some(Activation::Sigmoid) => 1,
        Some(Activation::Silu) => 2,
    }
}

/// A copy of `shape`'s elements: `dst[dst_offset + Σ i·dst_strides] = src[src_offset + Σ i·src_strides]`.
fn strided_copy(
    op: &'static str,
    (src, src_offset, src_strides): (Binding, i64, &[i64]),
    (dst, dst_offset, dst_strides): (Binding, usize, &[usize]),
    shape: &[usize],
) -> Result<Launch, ShapeError> {
    check_rank(op, shape.len())?;
    let count: usize = shape.iter().product();
    let to_i32 =
        |v: i64| i32::try_from(v).map_err(|_| shape_error(op, "offset beyond 32-bit indices"));
    let src_strides: Vec<u32> = src_strides
        .iter()
        .map(|&s| to_i32(s).map(|s| s as u32))
        .collect::<Result<_, _>>()?;
    let params = Params::default()
        .words(&[
            to_u32(op, count)?,
            shape.len() as u32,
            to_i32(src_offset)? as u32,
            to_u32(op, dst_offset)?,
        ])
        .array8(words(op, shape)?)
        .array8(src_strides)
        .array8(words(op, dst_strides)?);
    Ok(Launch {
        kernel: kernels::STRIDED_COPY,
        entry: "main",
        offsets: vec![(src.clone(), 2), (dst.clone(), 3)],
        inputs: vec![src],
        output: dst,
        params: params.0,
        grid: Grid::Elements(count),
    })
}

/// A slice of input 0 (per-axis start, step, count, as `cpu::slice_plan` gives) into `output`.
fn slice_launch(
    op: &'static str,
    input: &[usize],
    plan: &[(i64, i64, usize)],
    output: usize,
) -> Result<(Vec<usize>, Launch), ShapeError> {
    let in_strides = strides(input);
    let shape: Vec<usize> = plan.iter().map(|&(_, _, count)| count).collect();
    let offset: i64 = plan
        .iter()
        .zip(&in_strides)
        .map(|(&(start, _, _), &s)| start * s as i64)
        .sum();
    let steps: Vec<i64> = plan
        .iter()
        .zip(&in_strides)
        .map(|(&(_, step, _), &s)| step * s as i64)
        .collect();
    let launch = strided_copy(
        op,
        (Binding::Input(0), offset, &steps),
        (Binding::Output(output), 0, &strides(&shape)),
        &shape,
    )?;
    Ok((shape, launch))
}

/// `GatherElements` of `data` (shape `data_shape`) through `indices` (shape `shape`, already
/// checked by `cpu::gather_elements_plan`) along `axis`, into `output`.
fn gather_elements_launch(
    data_shape: &[usize],
    shape: &[usize],
    axis: usize,
    (data, indices): (Binding, Binding),
    output: Binding,
) -> Result<Launch, ShapeError> {
    let op = "GatherElements";
    check_rank(op, shape.len())?;
    let count: usize = shape.iter().product();
    let params = Params::default()
        .words(&words(op, &[count, shape.len(), axis, data_shape[axis]])?)
        .words(&[f32::NAN.to_bits(), 0, 0, 0])
        .array8(words(op, shape)?)
        .array8(words(op, &strides(data_shape))?);
    Ok(Launch {
        kernel: kernels::GATHER_ELEMENTS,
        entry: "main",
        inputs: vec![data, indices],
        output,
        params: params.0,
        offsets: Vec::new(),
        grid: Grid::Elements(count),
    })
}

/// RGBA pixels (input 0, one u32 each) letterboxed into the network input (output 0).
pub(super) fn letterbox(lb: &Letterbox) -> Launch {
    let count = (lb.input_width * lb.input_height) as usize;
    let same_size = lb.resized_width == lb.source_width && lb.resized_height == lb.source_height;
    let params = vec![
        count as u32,
        lb.source_width,
        lb.source_height,
        lb.input_width,
        lb.input_height,
        lb.resized_width,
        lb.resized_height,
        lb.pad_left,
        lb.pad_top,
        u32::from(same_size),
        0,
        0,
        (lb.scale as f32).to_bits(),
        0,
        0,
        0,
    ];
    Launch {
        kernel: kernels::LETTERBOX,
        entry: "main",
        inputs: vec![Binding::Input(0)],
        output: Binding::Output(0),
        params,
        offsets: Vec::new(),
        grid: Grid::Elements(count),
    }
}

/// The `from_out` word of `binary.wgsl`'s `Params`: which operand `add_from_out` reads through
/// its output binding (1: a, 2: b).
pub(super) const BINARY_FROM_OUT_WORD: usize = 5;

/// The `pads.z` word of the convolution kernels' `Params`: the input's element offset. (The
/// output's is word 3.)
const CONV_INPUT_OFFSET_WORD: usize = 22;

/// The `pads.w` word of the convolution kernels' `Params`: slices of a split-k reduction.
const CONV_SLICES_WORD: usize = 23;

/// The `residual` words of the convolution kernels' and the split-k sum's `Params`
/// (`residual.wgsl`): where the residual is read from, then its element offset.
const CONV_RESIDUAL_WORD: usize = 28;
const SUM_RESIDUAL_WORD: usize = 8;

/// `residual.wgsl`'s sources: its own binding, or the output's (a residual in the output's buffer,
/// which one launch may not bind twice: [`read_residual_through_output`]).
const RESIDUAL_FROM_BINDING: u32 = 1;
const RESIDUAL_FROM_OUTPUT: u32 = 2;

/// Makes `launch`, which binds a convolution's residual ([`Binding::Input`] 1), read it through
/// its output binding (the caller makes its own binding a stand-in).
pub(super) fn read_residual_through_output(launch: &mut Launch) {
    let word = if launch.kernel.name == kernels::SPLIT_K_SUM.name {
        SUM_RESIDUAL_WORD
    } else {
        CONV_RESIDUAL_WORD
    };
    debug_assert_eq!(launch.params[word], RESIDUAL_FROM_BINDING);
    launch.params[word] = RESIDUAL_FROM_OUTPUT;
}

/// The `tiles` words of the convolution kernels' `Params`: where the tile table starts in the tap
/// table's binding (0: none), its tiles per group, then for the tensor-core kernels' packed
/// weights the k tiles each tile's weights take and the grid's rows.
const CONV_TILES_WORD: usize = 24;

/// Which kernels a GPU backend runs its convolutions on. A backend starts with its adapter's
/// choice (`conv_kernels_for`): `TensorCores` on GPUs with matrix units wgpu can use, `Tiled` on
/// other GPUs, `TiledWhole` on software adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernels {
    /// One invocation per output value (`conv2d.wgsl`): the simple reference.
    Direct,
    /// Implicit GEMM (`conv_gemm.wgsl`), its tiling picked per layer shape and its reduction
    /// split along k where the layer has too few workgroups to fill a GPU; depthwise layers stay
    /// direct.
    Tiled,
    /// Implicit GEMM with one tiling of `kernels::CONV_TILINGS` for every layer, never split
    /// (for tests and measurements of each tiling).
    Tiling(usize),
    /// Tiling picked per layer, never split along k: what software adapters run.
    TiledWhole,
    /// One tiling for every layer, its reduction split into `slices` (for tests).
    Split { tiling: usize, slices: u32 },
    /// As `Tiled`, every tiled layer with its products on matrix units (`kernels::COOP_TILINGS`,
    /// picked by `choose_coop_tiling`: f16 factors, f32 sums); only on a device opened with them
    /// (`GpuContext::tensor_cores`). Measured on an H100 (BENCHMARKS.md), this beat keeping the
    /// 32x32 layers on `Tiled`'s kernels.
    TensorCores,
}

/// What the convolutions run on, as the benchmarks' tables name it: "tiled, split-k",
/// "conv_gemm.wgsl 64x64x16 whole", ...
impl std::fmt::Display for ConvKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ConvKernels::Direct => write!(f, "direct"),
            ConvKernels::Tiled => write!(f, "tiled, split-k"),
            ConvKernels::TiledWhole => write!(f, "tiled, whole"),
            ConvKernels::Tiling(i) => write!(f, "{} whole", kernels::CONV_TILINGS[i].kernel.name),
            ConvKernels::Split { tiling, slices } => write!(
                f,
                "{} in {slices} slices",
                kernels::CONV_TILINGS[tiling].kernel.name
            ),
            ConvKernels::TensorCores => write!(f, "tensor cores, split-k"),
        }
    }
}

/// Workgroups a convolution should spread over before it is split along k: enough for two on
/// each of an H100's 132 multiprocessors.
const TARGET_WORKGROUPS: u32 = 264;

/// The fewest k tiles a slice of a split convolution walks: each slice writes (and the sum
/// reads) a whole output's worth of partial sums.
const MIN_TILES_PER_SLICE: u32 = 4;

/// Slices of the reduction for a convolution of `workgroups` workgroups with `k_tiles` tiles
/// along k. Measured on an H100 (BENCHMARKS.md): a workgroup's time follows its number of k
/// tiles, so a layer with fewer workgroups than the GPU runs at once takes as long as its walk
/// along k; splitting it runs the slices side by side.
pub(super) fn choose_slices(workgroups: u32, k_tiles: u32) -> u32 {
    TARGET_WORKGROUPS
        .div_ceil(workgroups.max(1))
        .min(k_tiles / MIN_TILES_PER_SLICE)
        .max(1)
}

/// The tiling for a layer with `taps` (kH x kW) values per input channel and `k` values summed
/// per output. Measured per layer on an H100 (BENCHMARKS.md, YOLOv8n at 640): spatial kernels
/// with long sums won on 64x64 tiles (each loaded patch value serves 64 channels; loading it costs
/// index arithmetic), pointwise and short ones on 32x32 tiles (more workgroups to spread over the
/// GPU, cheap loads). The time of a layer followed its number of tiles along k far more than its
/// number of pixels or channels.
pub(super) fn choose_tiling(taps: usize, k: usize) -> kernels::ConvTiling {
    if taps > 1 && k >= 256 {
        kernels::CONV_GEMM_64X64
    } else {
        kernels::CONV_GEMM_32X32
    }
}

/// The tensor-core tiling for a layer of `channels` output channels per group, `pixels` output
/// pixels and `images` (batch x groups): 32x128 for layers of at most 32 channels that fill the
/// GPU on 64x64 tiles unsplit, else 64x64. Measured per layer on an H100 (BENCHMARKS.md, YOLOv8n
/// at 640): 32x128 took the 160x160 layers of 16 and 32 channels from 33-36 to 25-28 us, where a
/// 64-channel tile left half or three quarters of its products and weight loads idle; on layers
/// that split, and on 80-channel ones, it lost (fewer workgroups to spread, more slices).
pub(super) fn choose_coop_tiling(
    channels: usize,
    pixels: usize,
    images: usize,
) -> kernels::ConvTiling {
    let workgroups_64x64 = pixels.div_ceil(64) * channels.div_ceil(64) * images;
    if channels <= 32 && workgroups_64x64 >= TARGET_WORKGROUPS as usize {
        kernels::CONV_COOP_32X128
    } else {
        kernels::CONV_COOP_64X64
    }
}

/// Tiles that leave out a convolution's zero weights: where whole channels are zero (weights and
/// bias: the padding that `merge_sibling_convs` gives a merged head's narrower branches) and whole
/// spans of k are zero for a tile's channels (the padded input channels of the next merged
/// layer). Real channels and padding get tiles of their own; each tile walks only the k where
/// one of its channels has a nonzero weight (`conv_loads.wgsl`'s tile table). YOLOv8n's merged
/// 80x80 head layer, its 64-channel box branch padded to the 80 of the class branch: 36 k tiles
/// in one tile for the box branch and none for its padding, where the plain grid walks 45 in two.
struct ConvTileTable {
    /// Per group, per grid row: first channel, end, first k, end (group-relative; empty rows
    /// where a group has fewer tiles than another).
    bounds: Vec<[usize; 4]>,
    tiles_per_group: usize,
    /// The most k tiles one tile walks.
    longest_k_tiles: usize,
}

impl ConvTileTable {
    /// The table for `weight` (M x C/group x kH x kW) and `bias` of a convolution in `groups`
    /// groups on tiling `t`, or `None` where it would walk no fewer k tiles than the plain grid.
    fn of(
        weight: &Tensor,
        bias: Option<&Tensor>,
        groups: usize,
        t: kernels::ConvTiling,
    ) -> Option<Self> {
        let shape = weight.shape();
        let (m, k) = (shape[0], shape[1..].iter().product::<usize>());
        let (tile_m, tile_k) = (t.tile_m as usize, t.tile_k as usize);
        if k == 0 || groups == 0 || m % groups != 0 {
            return None;
        }
        let m_per_group = m / groups;
        // Each channel's span of nonzero weights (`None`: all zero).
        let nonzero: Vec<Option<(usize, usize)>> = weight
            .data()
            .chunks(k)
            .map(|row| {
                let first = row.iter().position(|&v| v != 0.0)?;
                let last = row.iter().rposition(|&v| v != 0.0)?;
                Some((first, last + 1))
            })
            .collect();
        let padding = |c: usize| nonzero[c].is_none() && bias.is_none_or(|b| b.data()[c] == 0.0);
        let tile_cost = |[_, _, k_lo, k_hi]: [usize; 4]| (k_hi - k_lo).div_ceil(tile_k) + 1;
        let mut per_group = Vec::with_capacity(groups);
        for g in 0..groups {
            let first = g * m_per_group;
            let mut tiles = Vec::new();
            let mut begin = 0;
            while begin < m_per_group {
                // A run of padding or of real channels, at most a tile's worth.
                let pad = padding(first + begin);
                let mut end = begin + 1;
                while end < m_per_group && end - begin < tile_m && padding(first + end) == pad {
                    end += 1;
                }
                let (k_lo, k_hi) = (begin..end)
                    .filter_map(|c| nonzero[first + c])
                    .fold((k, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
                tiles.push(if k_lo < k_hi {
                    [begin, end, k_lo, k_hi]
                } else {
                    [begin, end, 0, 0]
                });
                begin = end;
            }
            per_group.push(tiles);
        }
        let plain = groups * m_per_group.div_ceil(tile_m) * (k.div_ceil(tile_k) + 1);
        let cost: usize = per_group.iter().flatten().map(|&b| tile_cost(b)).sum();
        if cost >= plain {
            return None;
        }
        let tiles_per_group = per_group.iter().map(Vec::len).max()?;
        let longest_k_tiles = per_group
            .iter()
            .flatten()
            .map(|&b| tile_cost(b) - 1)
            .max()?;
        let bounds = per_group
            .into_iter()
            .flat_map(|mut tiles| {
                tiles.resize(tiles_per_group, [0; 4]);
                tiles
            })
            .collect();
        Some(Self {
            bounds,
            tiles_per_group,
            longest_k_tiles,
        })
    }
}

/// The tiles of the plain grid, in the tile table's form: per group, per grid row, first channel,
/// end, first k, end (all `k` of the reduction).
fn whole_tiles(groups: usize, m_per_group: usize, tile_m: usize, k: usize) -> Vec<[usize; 4]> {
    let rows = m_per_group.div_ceil(tile_m);
    (0..groups * rows)
        .map(|tile| {
            let m0 = (tile % rows) * tile_m;
            [m0, (m0 + tile_m).min(m_per_group), 0, k]
        })
        .collect()
}

/// The tensor-core kernels' weights (`conv_coop.wgsl`'s `weight_fragments`), in f16, two per word:
/// for each of the `tiles` (per group, per grid row: first channel, end, first k, end), per k tile
/// of `k_tiles`, per block of 16 of its `tile_m` channels, a 16x16 block, row-major (channel, k),
/// zeros past the tile's channels and k. Then one k tile of zeros, which the last tile's subgroups
/// read in loading a k tile ahead of their last.
fn weight_fragments(
    weight: &Tensor,
    groups: usize,
    tiles: &[[usize; 4]],
    tile_m: usize,
    k_tiles: usize,
) -> Vec<u32> {
    const BLOCK: usize = 16;
    let shape = weight.shape();
    let k: usize = shape[1..].iter().product();
    let m_per_group = shape[0] / groups;
    let rows = tiles.len() / groups;
    let k_tile = tile_m * BLOCK;
    let mut halves = vec![0u16; (tiles.len() * k_tiles + 1) * k_tile];
    for (tile, &[m0, m_end, k_lo, k_hi]) in tiles.iter().enumerate() {
        let g = tile / rows;
        for m in m0..m_end {
            let weights = &weight.data()[(g * m_per_group + m) * k..][..k];
            let (block, r) = ((m - m0) / BLOCK, (m - m0) % BLOCK);
            for (i, &value) in weights[k_lo..k_hi].iter().enumerate() {
                let (j, c) = (i / BLOCK, i % BLOCK);
                let at = (tile * k_tiles + j) * k_tile + block * BLOCK * BLOCK + r * BLOCK + c;
                halves[at] = f32_to_f16(value);
            }
        }
    }
    halves
        .as_chunks::<2>()
        .0
        .iter()
        .map(|&[low, high]| u32::from(low) | u32::from(high) << 16)
        .collect()
}

/// The tap table of `conv_gemm.wgsl` for an `input` (NCHW) convolved with a `kernel` (kH, kW)
/// over `channels` input channels per group: for each k = (channel, ky, kx) of the reduction, the
/// channel's element offset, then `(dy << 16) | dx`, the tap's offsets with dilation.
fn conv_taps_table(
    input: &[usize],
    kernel: [usize; 2],
    channels: usize,
    dilations: [usize; 2],
) -> Result<Vec<u32>, ShapeError> {
    let op = "Conv";
    let (dy_max, dx_max) = (
        (kernel[0] - 1) * dilations[0],
        (kernel[1] - 1) * dilations[1],
    );
    if dy_max.max(dx_max) > 0xffff {
        return Err(shape_error(
            op,
            format!("a dilated kernel {dy_max}x{dx_max} wide exceeds the GPU's 16-bit tap offsets"),
        ));
    }
    let plane = input[2] * input[3];
    let mut table = Vec::with_capacity(2 * channels * kernel[0] * kernel[1]);
    for channel in 0..channels {
        let offset = to_u32(op, channel * plane)?;
        for ky in 0..kernel[0] {
            for kx in 0..kernel[1] {
                let tap = ((ky * dilations[0]) << 16) | (kx * dilations[1]);
                table.extend([offset, tap as u32]);
            }
        }
    }
    Ok(table)
}

/// A contiguous output of `shape` whose element at each index is the input's at that index times
/// `source_strides` (a transpose, a broadcast).
fn read_strided(
    op: &'static str,
    source_strides: &[usize],
    shape: Vec<usize>,
) -> Result<OpPlan, ShapeError> {
    let source_strides: Vec<i64> = source_strides.iter().map(|&s| s as i64).collect();
    let launch = strided_copy(
        op,
        (Binding::Input(0), 0, &source_strides),
        (Binding::Output(0), 0, &strides(&shape)),
        &shape,
    )?;
    Ok(single(shape, launch))
}

fn single(output: Vec<usize>, launch: Launch) -> OpPlan {
    OpPlan {
        outputs: vec![output],
        launches: vec![launch],
        aliases_input: false,
        scratch_bytes: 0,
    }
}

/// The launches of `op` on operands of `inputs` shapes; `constants` are the network's constants
/// (convolution weights and biases: their shapes, and where weights are zero). Where
/// `conv_kernels` picks split-k per layer (`ConvKernels::Tiled`), a convolution takes no more
/// slices than `scratch_limit` bytes of partial sums hold (none where not two).
pub(super) fn plan(
    op: &Op,
    inputs: &[&[usize]],
    constants: &[&Tensor],
    conv_kernels: ConvKernels,
    scratch_limit: u64,
) -> Result<OpPlan, EngineError> {
    Ok(match op {
        Op::Activation(kind) => {
            let len: usize = inputs[0].iter().product();
            let entry = match kind {
                Activation::Sigmoid => "sigmoid",
                Activation::Silu => "silu",
            };
            let params = Params::default().words(&[to_u32("Activation", len)?, 0, 0, 0]);
            single(
                inputs[0].to_vec(),
                Launch {
                    kernel: kernels::ACTIVATION,
                    entry,
                    inputs: vec![Binding::Input(0)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: vec![(Binding::Input(0), 1), (Binding::Output(0), 2)],
                    grid: Grid::Elements(len),
                },
            )
        }
        Op::Conv {
            weight,
            bias,
            attrs,
            activation,
            residual,
        } => {
            let (w, b) = (
                constants[*weight].shape(),
                bias.map(|b| constants[b].shape()),
            );
            let out = cpu::conv2d_output_shape(inputs[0], w, b, attrs)?;
            let count: usize = out.iter().product();
            let op = "Conv";
            if *residual {
                cpu::check_residual(&out, inputs[1])?;
            }
            // Read from binding 3, from where a resident network places it (`offsets`).
            let (residual_binding, residual_words) = if *residual {
                (Binding::Input(1), [RESIDUAL_FROM_BINDING, 0, 0, 0])
            } else {
                (Binding::Absent, [0; 4])
            };
            let params = Params::default()
                .words(&[
                    to_u32(op, count)?,
                    activation_code(*activation),
                    u32::from(bias.is_some()),
                    0,
                ])
                .words(&words(op, inputs[0])?)
                .words(&words(op, &out)?)
                .words(&words(op, &[w[2], w[3], w[1], w[0] / attrs.group])?)
                .words(&window_words(
                    op,
                    attrs.strides,
                    attrs.dilations,
                    attrs.pads,
                )?)
                .words(&[0; 4])
                .words(&residual_words);
            let bias_binding = bias.map_or(Binding::Absent, Binding::Constant);
            let (m_per_group, c_per_group) = (w[0] / attrs.group, w[1]);
            let pixels = out[2] * out[3];
            let k = c_per_group * w[2] * w[3];
            // Depthwise convolutions have no reduction across channels to tile: direct kernel.
            let tiling = match conv_kernels {
                ConvKernels::Direct => None,
                _ if c_per_group == 1 && m_per_group == 1 => None,
                ConvKernels::Tiled | ConvKernels::TiledWhole => Some(choose_tiling(w[2] * w[3], k)),
                ConvKernels::TensorCores => Some(choose_coop_tiling(
                    m_per_group,
                    pixels,
                    out[0] * attrs.group,
                )),
                ConvKernels::Tiling(i) | ConvKernels::Split { tiling: i, .. } => {
                    Some(kernels::CONV_TILINGS[i])
                }
            };
            let launch = |kernel, grid| Launch {
                kernel,
                entry: "main",
                inputs: vec![
                    Binding::Input(0),
                    Binding::Constant(*weight),
                    bias_binding.clone(),
                    residual_binding.clone(),
                ],
                output: Binding::Output(0),
                params: params.0.clone(),
                offsets: [
                    (Binding::Input(0), CONV_INPUT_OFFSET_WORD),
                    (Binding::Output(0), 3),
                ]
                .into_iter()
                .chain(residual.then_some((Binding::Input(1), CONV_RESIDUAL_WORD + 1)))
                .collect(),
                grid: if count == 0 { Grid::Elements(0) } else { grid },
            };
            let Some(t) = tiling else {
                return Ok(single(
                    out.to_vec(),
                    launch(kernels::CONV2D, Grid::Elements(count)),
                ));
            };
            let mut taps = conv_taps_table(inputs[0], [w[2], w[3]], c_per_group, attrs.dilations)?;
            let tile_table = ConvTileTable::of(
                constants[*weight],
                bias.map(|b| constants[b]),
                attrs.group,
                t,
            );
            let (rows, k_tiles) = match &tile_table {
                Some(table) => (table.tiles_per_group, table.longest_k_tiles),
                None => (
                    m_per_group.div_ceil(t.tile_m as usize),
                    k.div_ceil(t.tile_k as usize),
                ),
            };
            let mut params = params.0.clone();
            if let Some(table) = &tile_table {
                params[CONV_TILES_WORD] = to_u32(op, taps.len())?;
                params[CONV_TILES_WORD + 1] = to_u32(op, table.tiles_per_group)?;
                for bound in table.bounds.iter().flatten() {
                    taps.push(to_u32(op, *bound)?);
                }
            }
            let fragments = if t.kernel.tensor_cores {
                params[CONV_TILES_WORD + 2] = to_u32(op, k_tiles)?;
                params[CONV_TILES_WORD + 3] = to_u32(op, rows)?;
                let whole;
                let tiles = match &tile_table {
                    Some(table) => &table.bounds,
                    None => {
                        whole = whole_tiles(attrs.group, m_per_group, t.tile_m as usize, k);
                        &whole
                    }
                };
                Some(weight_fragments(
                    constants[*weight],
                    attrs.group,
                    tiles,
                    t.tile_m as usize,
                    k_tiles,
                ))
            } else {
                None
            };
            // Called once, for the whole or the split launch: the data it owns moves into it.
            let launch = move |kernel, grid| {
                let mut launch = launch(kernel, grid);
                launch.params = params;
                if let Some(fragments) = fragments {
                    launch.inputs[1] = Binding::Aux(fragments);
                }
                launch.inputs.push(Binding::Aux(taps));
                launch
            };
            let tiles = [
                to_u32(op, pixels.div_ceil(t.tile_n as usize))?,
                to_u32(op, rows)?,
                to_u32(op, out[0] * attrs.group)?,
            ];
            let k_tiles = to_u32(op, k_tiles)?;
            let slices = match conv_kernels {
                ConvKernels::Tiled | ConvKernels::TensorCores => {
                    let fit = scratch_limit / (count.max(1) as u64 * 4);
                    choose_slices(tiles.iter().product(), k_tiles)
                        .min(u32::try_from(fit).unwrap_or(u32::MAX))
                        .max(1)
                }
                ConvKernels::Split { slices, .. } => slices.max(1),
                _ => 1,
            };
            if slices == 1 || count == 0 {
                return Ok(single(
                    out.to_vec(),
                    launch(t.kernel, Grid::Workgroups(tiles)),
                ));
            }
            let mut partial = launch(
                t.split_kernel,
                Grid::Workgroups([tiles[0], tiles[1], tiles[2] * slices]),
            );
            partial.params[CONV_SLICES_WORD] = slices;
            partial.params[CONV_RESIDUAL_WORD] = 0;
            partial.inputs[3] = Binding::Absent;
            partial.output = Binding::Scratch;
            partial.offsets.retain(|(b, _)| *b == Binding::Input(0));
            let sum = Launch {
                kernel: kernels::SPLIT_K_SUM,
                entry: "main",
                inputs: vec![Binding::Scratch, bias_binding, residual_binding],
                output: Binding::Output(0),
                params: Params::default()
                    .words(&[
                        to_u32(op, count)?,
                        slices,
                        activation_code(*activation),
                        u32::from(bias.is_some()),
                    ])
                    .words(&[0, to_u32(op, out[1])?, to_u32(op, pixels)?, 0])
                    .words(&residual_words)
                    .0,
                offsets: [(Binding::Output(0), 4)]
                    .into_iter()
                    .chain(residual.then_some((Binding::Input(1), SUM_RESIDUAL_WORD + 1)))
                    .collect(),
                grid: Grid::Elements(count),
            };
            OpPlan {
                outputs: vec![out.to_vec()],
                launches: vec![partial, sum],
                aliases_input: false,
                scratch_bytes: (count * slices as usize * 4) as u64,
            }
        }
        Op::MaxPool(attrs) => {
            let out = cpu::max_pool2d_output_shape(inputs[0], attrs)?;
            let count: usize = out.iter().product();
            let op = "MaxPool";
            let params = Params::default()
                .words(&[to_u32(op, count)?, 0, 0, 0])
                .words(&words(op, inputs[0])?)
                .words(&words(op, &out)?)
                .words(&words(op, &[attrs.kernel[0], attrs.kernel[1], 0, 0])?)
                .words(&window_words(
                    op,
                    attrs.strides,
                    attrs.dilations,
                    attrs.pads,
                )?);
            single(
                out.to_vec(),
                Launch {
                    kernel: kernels::MAX_POOL,
                    entry: "main",
                    inputs: vec![Binding::Input(0)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: vec![(Binding::Input(0), 1), (Binding::Output(0), 2)],
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::Binary(op) => {
            let (name, entry) = match op {
                BinaryOp::Add => ("Add", "add"),
                BinaryOp::Sub => ("Sub", "sub"),
                BinaryOp::Mul => ("Mul", "mul"),
                BinaryOp::Div => ("Div", "div"),
                BinaryOp::IntDiv => ("Div", "int_div"),
                BinaryOp::Mod => ("Mod", "int_mod"),
                BinaryOp::Fmod => ("Mod", "int_fmod"),
            };
            let shape = cpu::broadcast_shape(name, inputs[0], inputs[1])?;
            check_rank(name, shape.len())?;
            let count: usize = shape.iter().product();
            let params = Params::default()
                .words(&[to_u32(name, count)?, shape.len() as u32, 0, 0])
                .words(&[0; 4])
                .array8(words(name, &shape)?)
                .array8(words(name, &broadcast_strides(inputs[0], &shape))?)
                .array8(words(name, &broadcast_strides(inputs[1], &shape))?);
            single(
                shape,
                Launch {
                    kernel: kernels::BINARY,
                    entry,
                    inputs: vec![Binding::Input(0), Binding::Input(1)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: vec![
                        (Binding::Input(0), 2),
                        (Binding::Input(1), 3),
                        (Binding::Output(0), 4),
                    ],
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::Transpose(perm) => {
            let (shape, source_strides) = cpu::transpose_plan(inputs[0], perm)?;
            read_strided("Transpose", &source_strides, shape)?
        }
        Op::Slice {
            starts,
            ends,
            axes,
            steps,
        } => {
            let plan = cpu::slice_plan(inputs[0], starts, ends, Some(axes), Some(steps))?;
            let (shape, launch) = slice_launch("Slice", inputs[0], &plan, 0)?;
            single(shape, launch)
        }
        Op::Concat(axis) => {
            let (axis, shape) = cpu::concat_shape(inputs, *axis)?;
            let out_strides = strides(&shape);
            let mut offset = 0;
            let mut launches = Vec::with_capacity(inputs.len());
            for (i, input) in inputs.iter().enumerate() {
                let src_strides: Vec<i64> = strides(input).iter().map(|&s| s as i64).collect();
                let dst_offset = offset * out_strides[axis];
                launches.push(strided_copy(
                    "Concat",
                    (Binding::Input(i), 0, &src_strides),
                    (Binding::Output(0), dst_offset, &out_strides),
                    input,
                )?);
                offset += input[axis];
            }
            OpPlan {
                outputs: vec![shape],
                launches,
                aliases_input: false,
                scratch_bytes: 0,
            }
        }
        Op::Split { axis, sizes } => {
            let mut outputs = Vec::with_capacity(sizes.len());
            let mut launches = Vec::with_capacity(sizes.len());
            for (i, plan) in cpu::split_plan(inputs[0], *axis, sizes)?.iter().enumerate() {
                let (shape, launch) = slice_launch("Split", inputs[0], plan, i)?;
                outputs.push(shape);
                launches.push(launch);
            }
            OpPlan {
                outputs,
                launches,
                aliases_input: false,
                scratch_bytes: 0,
            }
        }
        Op::Gather {
            axis,
            indices,
            indices_shape,
        } => {
            let op = "Gather";
            let (axis, resolved, shape) =
                cpu::gather_plan(inputs[0], *axis, indices, indices_shape)?;
            let count: usize = shape.iter().product();
            let inner: usize = inputs[0][axis + 1..].iter().product();
            let params = Params::default().words(&[
                to_u32(op, count)?,
                to_u32(op, resolved.len().max(1))?,
                to_u32(op, inputs[0][axis])?,
                to_u32(op, inner.max(1))?,
            ]);
            single(
                shape,
                Launch {
                    kernel: kernels::GATHER,
                    entry: "main",
                    inputs: vec![Binding::Input(0), Binding::Aux(words(op, &resolved)?)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: Vec::new(),
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::Resize {
            output_shape,
            scales,
            transform,
            rounding,
        } => {
            let op = "Resize";
            let maps = cpu::resize_maps(
                inputs[0],
                output_shape,
                scales.as_deref(),
                *transform,
                *rounding,
            )?;
            check_rank(op, output_shape.len())?;
            let mut offsets = Vec::with_capacity(maps.len());
            let mut flat: Vec<usize> = Vec::new();
            for map in &maps {
                offsets.push(flat.len());
                flat.extend(map);
            }
            let count: usize = output_shape.iter().product();
            let params = Params::default()
                .words(&[to_u32(op, count)?, output_shape.len() as u32, 0, 0])
                .array8(words(op, output_shape)?)
                .array8(words(op, &strides(inputs[0]))?)
                .array8(words(op, &offsets)?);
            single(
                output_shape.clone(),
                Launch {
                    kernel: kernels::RESIZE_NEAREST,
                    entry: "main",
                    inputs: vec![Binding::Input(0), Binding::Aux(words(op, &flat)?)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: vec![(Binding::Input(0), 2), (Binding::Output(0), 3)],
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::Softmax(axis) => {
            let op = "Softmax";
            let axis = crate::normalize_axis(op, *axis, inputs[0].len())?;
            let len = inputs[0][axis];
            let inner: usize = inputs[0][axis + 1..].iter().product();
            let total: usize = inputs[0].iter().product();
            let rows = total.checked_div(len).unwrap_or(0);
            let params = Params::default().words(&[
                to_u32(op, rows)?,
                to_u32(op, len)?,
                to_u32(op, inner.max(1))?,
                0,
            ]);
            single(
                inputs[0].to_vec(),
                Launch {
                    kernel: kernels::SOFTMAX,
                    entry: "main",
                    inputs: vec![Binding::Input(0)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: Vec::new(),
                    grid: Grid::Elements(rows),
                },
            )
        }
        Op::MatMul => {
            let op = "MatMul";
            let MatmulPlan {
                m,
                n,
                k,
                batch,
                stride_a,
                stride_b,
                output_shape,
            } = cpu::matmul_plan(inputs[0], inputs[1])?;
            check_rank(op, batch.len())?;
            let count: usize = output_shape.iter().product();
            let params = Params::default()
                .words(&[
                    to_u32(op, count)?,
                    to_u32(op, m)?,
                    to_u32(op, n)?,
                    to_u32(op, k)?,
                ])
                .words(&[batch.len() as u32, 0, 0, 0])
                .array8(words(op, &batch)?)
                .array8(words(op, &stride_a)?)
                .array8(words(op, &stride_b)?);
            single(
                output_shape,
                Launch {
                    kernel: kernels::MATMUL,
                    entry: "main",
                    inputs: vec![Binding::Input(0), Binding::Input(1)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: Vec::new(),
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::ReduceMax { axes, keepdims } => {
            let op = "ReduceMax";
            let cpu::ReducePlan {
                outer,
                len,
                inner,
                output_shape,
            } = cpu::reduce_plan(op, inputs[0], axes, *keepdims)?;
            let count = outer * inner;
            let params = Params::default().words(&words(op, &[count, len, inner.max(1), 0])?);
            single(
                output_shape,
                Launch {
                    kernel: kernels::REDUCE_MAX,
                    entry: "main",
                    inputs: vec![Binding::Input(0)],
                    output: Binding::Output(0),
                    params: params.0,
                    offsets: Vec::new(),
                    grid: Grid::Elements(count),
                },
            )
        }
        Op::TopK { axis, k, largest } => {
            let op = "TopK";
            let cpu::TopKPlan {
                axis,
                outer,
                len,
                inner,
                shape,
            } = cpu::top_k_plan(inputs[0], *axis, *k)?;
            let count = outer * len * inner;
            let params = Params::default()
                .words(&words(op, &[count, len, *k, inner.max(1)])?)
                .words(&[u32::from(*largest), 0, 0, 0]);
            // Output 1 (the indices) by rank, then output 0 gathered from the input through them.
            let indices = Launch {
                kernel: kernels::TOP_K,
                entry: "main",
                inputs: vec![Binding::Input(0)],
                output: Binding::Output(1),
                params: params.0,
                offsets: Vec::new(),
                grid: Grid::Elements(if *k == 0 { 0 } else { count }),
            };
            let values = gather_elements_launch(
                inputs[0],
                &shape,
                axis,
                (Binding::Input(0), Binding::Output(1)),
                Binding::Output(0),
            )?;
            OpPlan {
                outputs: vec![shape.clone(), shape],
                launches: vec![indices, values],
                aliases_input: false,
                scratch_bytes: 0,
            }
        }
        Op::GatherElements(axis) => {
            let axis = cpu::gather_elements_plan(inputs[0], inputs[1], *axis)?;
            let launch = gather_elements_launch(
                inputs[0],
                inputs[1],
                axis,
                (Binding::Input(0), Binding::Input(1)),
                Binding::Output(0),
            )?;
            single(inputs[1].to_vec(), launch)
        }
        Op::Expand(shape) => {
            let output = cpu::broadcast_shape("Expand", inputs[0], shape)?;
            let source_strides = broadcast_strides(inputs[0], &output);
            read_strided("Expand", &source_strides, output)?
        }
        Op::Reshape(shape) => {
            let (from, to) = (
                inputs[0].iter().product::<usize>(),
                shape.iter().product::<usize>(),
            );
            if from != to {
                return Err(shape_error(
                    "Reshape",
                    format!("{:?} cannot become {shape:?}", inputs[0]),
                )
                .into());
            }
            OpPlan {
                outputs: vec![shape.clone()],
                launches: Vec::new(),
                aliases_input: true,
                scratch_bytes: 0,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_pad_arrays_to_eight_words() {
        let p = Params::default().words(&[1, 2, 3, 4]).array8([5, 6]);
        assert_eq!(p.0, [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn concat_is_one_copy_per_input_into_its_slice_of_the_output() {
        let plan = plan(
            &Op::Concat(1),
            &[&[1, 2, 3], &[1, 4, 3]],
            &[],
            ConvKernels::Tiled,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(plan.outputs, [vec![1, 6, 3]]);
        let offsets: Vec<u32> = plan.launches.iter().map(|l| l.params[3]).collect();
        assert_eq!(
            offsets,
            [0, 6],
            "the second input starts after the first's 2x3 values"
        );
    }

    #[test]
    fn reshape_launches_nothing_and_aliases_its_input() {
        let reshape = |to: usize| {
            plan(
                &Op::Reshape(vec![to]),
                &[&[2, 3]],
                &[],
                ConvKernels::Tiled,
                u64::MAX,
            )
        };
        let plan = reshape(6).unwrap();
        assert!(plan.aliases_input && plan.launches.is_empty());
        assert!(reshape(5).is_err());
    }

    #[test]
    fn only_layers_with_few_workgroups_and_long_sums_are_split() {
        // YOLOv8n's 3x3 head convolutions at 20x20: 14 workgroups, 144 k tiles.
        assert_eq!(choose_slices(14, 144), 19);
        assert_eq!(choose_slices(600, 144), 1, "already fills the GPU");
        assert_eq!(choose_slices(14, 7), 1, "too short to split");
        let (weight, bias) = (
            Tensor::new(vec![64, 256, 3, 3], vec![1.0; 64 * 256 * 9]).unwrap(),
            Tensor::new(vec![64], vec![1.0; 64]).unwrap(),
        );
        let conv = |scratch_limit| {
            plan(
                &Op::Conv {
                    weight: 0,
                    bias: Some(1),
                    attrs: cpu::Conv2d::default(),
                    activation: Some(Activation::Silu),
                    residual: false,
                },
                &[&[1, 256, 20, 20]],
                &[&weight, &bias],
                ConvKernels::Tiled,
                scratch_limit,
            )
            .unwrap()
        };
        // Partial sums held to a limit: as many slices as fit, or the whole convolution.
        let slice_bytes = 64 * 18 * 18 * 4;
        let limited = conv(3 * slice_bytes + 5);
        assert_eq!(limited.scratch_bytes, 3 * slice_bytes);
        assert_eq!(limited.launches[0].params[CONV_SLICES_WORD], 3);
        let whole = conv(2 * slice_bytes - 4);
        assert_eq!(whole.scratch_bytes, 0);
        assert_eq!(whole.launches.len(), 1);
        assert_eq!(whole.launches[0].output, Binding::Output(0));
        let plan = conv(u64::MAX);
        let kernels: Vec<&str> = plan.launches.iter().map(|l| l.kernel.name).collect();
        assert_eq!(
            kernels,
            [
                kernels::CONV_GEMM_64X64.split_kernel.name,
                kernels::SPLIT_K_SUM.name
            ]
        );
        assert_eq!(plan.launches[0].output, Binding::Scratch);
        assert_eq!(plan.launches[1].inputs[0], Binding::Scratch);
        assert!(plan.scratch_bytes >= 64 * 18 * 18 * 4 * 2);
    }

    #[test]
    fn tilings_follow_the_measured_layer_classes() {
        let name = |taps, k| choose_tiling(taps, k).kernel.name;
        // YOLOv8n: a 3x3 convolution of 64 channels sums 576 values: 64x64 tiles.
        assert_eq!(name(9, 576), kernels::CONV_GEMM_64X64.kernel.name);
        // Its 1x1 convolutions and the 3-channel stem (27 values): 32x32.
        assert_eq!(name(1, 512), kernels::CONV_GEMM_32X32.kernel.name);
        assert_eq!(name(9, 27), kernels::CONV_GEMM_32X32.kernel.name);
    }

    #[test]
    fn tensor_core_tiles_follow_the_measured_layer_classes() {
        let name = |channels, side: usize| choose_coop_tiling(channels, side * side, 1).kernel.name;
        // YOLOv8n at 640: the 160x160 layers of 16 and 32 channels, and the DFL's 1-channel
        // convolution over 4 x 8400 values, on 32x128 tiles.
        for (channels, side) in [(16, 160), (32, 160), (1, 183)] {
            assert_eq!(name(channels, side), kernels::CONV_COOP_32X128.kernel.name);
        }
        // 32 channels at 80x80 (split on either tiling), 80 and 64 channels: 64x64.
        for (channels, side) in [(32, 80), (80, 80), (64, 160), (128, 20)] {
            assert_eq!(name(channels, side), kernels::CONV_COOP_64X64.kernel.name);
        }
    }

    #[test]
    fn tensor_core_weights_are_packed_in_the_blocks_their_subgroups_multiply() {
        use crate::f16::f16_to_f32;
        let unpack = |words: Vec<u32>| -> Vec<f32> {
            words
                .iter()
                .flat_map(|w| [*w as u16, (w >> 16) as u16])
                .map(f16_to_f32)
                .collect()
        };
        // Two groups of 20 channels over 3 inputs, 3x3 (k = 27): integers, exact in f16.
        let k = 27;
        let weight = Tensor::new(
            vec![40, 3, 3, 3],
            (0..40 * k).map(|i| (i % 1000) as f32 + 1.0).collect(),
        )
        .unwrap();
        let w = |g: usize, m: usize, kk: usize| weight.data()[(g * 20 + m) * k + kk];
        // 32-channel tiles, one per group, two k tiles each, then a k tile of zeros.
        let tiles = whole_tiles(2, 20, 32, k);
        assert_eq!(tiles, [[0, 20, 0, k], [0, 20, 0, k]]);
        let halves = unpack(weight_fragments(&weight, 2, &tiles, 32, 2));
        assert_eq!(halves.len(), (2 * 2 + 1) * 32 * 16);
        let mut expected = vec![0.0; halves.len()];
        for g in 0..2 {
            for m in 0..20 {
                for kk in 0..k {
                    let at = (g * 2 + kk / 16) * 512 + (m / 16) * 256 + (m % 16) * 16 + kk % 16;
                    expected[at] = w(g, m, kk);
                }
            }
        }
        assert_eq!(halves, expected);
        // A tile table's tiles: channels 2..6 from k = 3 (64-channel tiles, after an empty one).
        let tiles = [[0, 2, 0, 0], [2, 6, 3, k]];
        let halves = unpack(weight_fragments(&weight, 1, &tiles, 64, 2));
        assert_eq!(halves.len(), (2 * 2 + 1) * 64 * 16);
        let mut expected = vec![0.0; halves.len()];
        for m in 2..6 {
            for kk in 3..k {
                let (j, c) = ((kk - 3) / 16, (kk - 3) % 16);
                expected[(2 + j) * 1024 + (m - 2) * 16 + c] = w(0, m, kk);
            }
        }
        assert_eq!(halves, expected);
    }

    #[test]
    fn tiles_leave_out_a_merged_heads_padding_and_its_zero_weights() {
        // YOLOv8n's merged 80x80 head layer: two groups of 80 channels over 80 inputs each, 3x3.
        // The box branch (group 0) has 64 channels after 16 of padding, reading its own 64
        // inputs (k from 16 x 9); the class branch all 80.
        let k = 80 * 9;
        let mut weights = vec![0.0; 160 * k];
        for (c, row) in weights.chunks_mut(k).enumerate() {
            match c {
                0..16 => {}
                16..80 => row[16 * 9..].fill(0.5),
                _ => row.fill(0.5),
            }
        }
        let weight = Tensor::new(vec![160, 80, 3, 3], weights).unwrap();
        let mut biases = vec![0.25; 160];
        biases[..16].fill(0.0);
        let bias = Tensor::new(vec![160], biases).unwrap();
        let table = ConvTileTable::of(&weight, Some(&bias), 2, kernels::CONV_COOP_64X64).unwrap();
        assert_eq!(
            table.bounds,
            [
                [0, 16, 0, 0],
                [16, 80, 144, k],
                [0, 64, 0, k],
                [64, 80, 0, k]
            ],
        );
        assert_eq!((table.tiles_per_group, table.longest_k_tiles), (2, 45));
        // A channel of zero weights with a bias is not padding: its tile stores the bias.
        let mut biased = bias.clone();
        biased.data_mut()[0] = 1.0;
        let table = ConvTileTable::of(&weight, Some(&biased), 2, kernels::CONV_COOP_64X64).unwrap();
        assert_eq!(
            table.bounds[..3],
            [[0, 1, 0, 0], [1, 16, 0, 0], [16, 80, 144, k]]
        );
        // Weights without zeros keep the plain grid.
        let dense = Tensor::new(vec![160, 80, 3, 3], vec![1.0; 160 * k]).unwrap();
        assert!(ConvTileTable::of(&dense, None, 2, kernels::CONV_COOP_64X64).is_none());
    }
}
