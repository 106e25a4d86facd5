// What the implicit-GEMM convolutions (conv_gemm.wgsl, conv_coop.wgsl) share: their Params and
// bindings, where a workgroup's tile and slice of the reduction lie, and how an invocation loads
// its patch values of each tile of k (each kernel loads its weights its own way, binding 1). Not
// a kernel of its own: the kernels crate puts it before each of those files, after the tile
// sizes.
//
// A patch value's place in the input comes from the layer's tap table (binding 4, made by the
// plan): for each k, the input channel's offset and the tap's (dy, dx). Dividing k by the taps
// and the tap by the kernel width here, per loaded value, cost more integer work than the
// products it feeds.

// (TILE_M / 4) x (TILE_N / 4) invocations, each loading PATCH_LOADS patch values of every tile:
// four on square tiles, where TILE_K = 4 x invocations / TILE_N; eight on the tensor cores'
// 32x128 tile.
const THREADS: u32 = TILE_M * TILE_N / 16u;
const PATCH_ROW_STEP: u32 = THREADS / TILE_N;
const PATCH_LOADS: u32 = TILE_K / PATCH_ROW_STEP;

struct Params {
    count: u32,
    activation: u32, // 0 none, 1 sigmoid, 2 silu
    has_bias: u32,
    out_offset: u32,   // where the output starts in `out` (a slice of a concatenation)
    input: vec4<u32>,  // N, C, H, W
    output: vec4<u32>, // N, M, OH, OW
    kernel: vec4<u32>, // kH, kW, C/group, M/group
    steps: vec4<u32>,  // stride h, stride w, dilation h, dilation w
    pads: vec4<u32>,   // top, left, the input's offset in `input`, slices of k (split-k)
    // Where the layer's tile table starts in `taps_table` (0: none, every tile the whole
    // reduction), its tiles per group; for packed weights (conv_coop.wgsl), the k tiles each
    // tile's weights take and the grid's rows.
    tiles: vec4<u32>,
    residual: vec4<u32>, // what residual_at adds (not split: residual.wgsl): source, offset
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
// Binding 1, the weights: the kernel's own (as the model has them, or packed).
@group(0) @binding(2) var<storage, read> bias: array<Elem>;
// Binding 3, a residual, read where not split: the variant's preamble.
// Per k, two words: the input channel's offset (channel x H x W), then (dy << 16) | dx, the tap's
// offsets in rows and columns (dilation included). Then, for a layer whose weights have rows or
// columns of zeros (a merged head's padded branches), its tile table: per group, per grid row,
// the tile's channels and its range of k (four words: first channel, end, first k, end), which
// leaves out k where every weight of the tile's channels is zero. A group with fewer tiles than
// the grid's rows has empty ones (no channels, no k), which store nothing.
@group(0) @binding(4) var<storage, read> taps_table: array<u32>;
// Binding 5, the sums' destination, and `put` come from the variant's preamble.
@group(0) @binding(6) var<uniform> params: Params;

// Values summed per output: read from the uniform, so that browsers' uniformity analysis sees the
// loop around the barriers run the same number of times in every invocation (a private copy
// would not be seen so, and the pipeline would fail in Chromium).
fn reduction_length() -> u32 {
    return params.kernel.z * params.kernel.x * params.kernel.y;
}

// What every load of this invocation needs, set once by `start`.
var<private> input_base: u32;
var<private> pointwise: bool;
var<private> patch_k: u32;      // the first of its patch rows
var<private> patch_pixel: u32;  // its column of every patch tile
var<private> iy0: i32;
var<private> ix0: i32;

// A tile's bounds from the tile table, read by one invocation and shared: the loop over k runs
// the same number of times in every invocation, as its barriers require.
var<workgroup> tile_bounds: vec4<u32>;

// A workgroup's part of the convolution: its image and group, its slice of the reduction (all of
// it unless split), and the corner of its output tile.
struct Work {
    n: u32,
    g: u32,
    slice: u32,
    k_first: u32, // the tile's first k (the slices' start)
    k_begin: u32,
    k_end: u32,
    m0: u32, // output channels m0 .. min(m0 + TILE_M, m_end) of group g
    m_end: u32,
    p0: u32, // output pixels p0 .. p0 + TILE_N
}

// Grid: x over pixel tiles, y over channel tiles of one group, z over slices of k x batch x
// groups. Sets this invocation's loads up (the private variables above).
fn start(wg: vec3<u32>, lid: u32) -> Work {
    let m_per_group = params.kernel.w;
    let groups = params.output.y / m_per_group;
    let k_total = reduction_length();
    let images = params.output.x * groups; // batch x groups
    var work: Work;
    work.slice = wg.z / images;
    work.n = (wg.z % images) / groups;
    work.g = wg.z % groups;
    // This workgroup's channels and k: a whole tile of each, or its tile table's bounds.
    var bounds = vec4<u32>(wg.y * TILE_M, m_per_group, 0u, k_total);
    if params.tiles.x != 0u {
        if lid == 0u {
            let t = params.tiles.x + 4u * (work.g * params.tiles.y + wg.y);
            tile_bounds = vec4<u32>(taps_table[t], taps_table[t + 1u], taps_table[t + 2u], taps_table[t + 3u]);
        }
        bounds = workgroupUniformLoad(&tile_bounds);
    }
    work.m0 = bounds.x;
    work.k_first = bounds.z;
    work.m_end = bounds.y;
    // Its k tiles: all of its range, or its slice of them (the last slices may be empty).
    let k_tiles = (bounds.w - bounds.z + TILE_K - 1u) / TILE_K;
    let slices = max(params.pads.w, 1u);
    let tiles_per_slice = (k_tiles + slices - 1u) / slices;
    work.k_begin = bounds.z + min(work.slice * tiles_per_slice, k_tiles) * TILE_K;
    work.k_end = min(work.k_begin + tiles_per_slice * TILE_K, bounds.w);
    work.p0 = wg.x * TILE_N;

    let h = params.input.z;
    let w = params.input.w;
    let ow = params.output.w;
    input_base = params.pads.z + (work.n * params.input.y + work.g * params.kernel.z) * h * w;
    // A 1x1 convolution with unit steps and no padding reads its patches as rows of the input.
    pointwise = params.kernel.x * params.kernel.y == 1u
        && all(params.steps.xy == vec2<u32>(1u)) && params.pads.x == 0u && params.pads.y == 0u;
    // Patch values: rows patch_k + i PATCH_ROW_STEP of column patch_pixel.
    patch_k = lid / TILE_N;
    patch_pixel = work.p0 + lid % TILE_N;
    iy0 = i32((patch_pixel / ow) * params.steps.x) - i32(params.pads.x);
    ix0 = i32((patch_pixel % ow) * params.steps.y) - i32(params.pads.y);
    return work;
}

// The tap table's entry for k (channel offset, packed tap), zeros past the reduction and for
// pointwise layers, which need none.
fn tap_of(k: u32) -> vec2<u32> {
    if pointwise || k >= reduction_length() {
        return vec2<u32>(0u);
    }
    return vec2<u32>(taps_table[2u * k], taps_table[2u * k + 1u]);
}

// Value k of the patch of this invocation's pixel, `tap` its entry in the tap table; zero outside
// the image (padding).
fn load_patch(k: u32, tap: vec2<u32>) -> f32 {
    let pixels = params.output.z * params.output.w;
    if patch_pixel >= pixels || k >= reduction_length() {
        return 0.0;
    }
    if pointwise {
        return f32(input[input_base + k * pixels + patch_pixel]);
    }
    // Negative rows and columns wrap to large values: one unsigned comparison each.
    let y = u32(iy0 + i32(tap.y >> 16u));
    let x = u32(ix0 + i32(tap.y & 0xffffu));
    if y < params.input.z && x < params.input.w {
        return f32(input[input_base + tap.x + y * params.input.w + x]);
    }
    return 0.0;
}

// Patch row i of this invocation's loads at k (rows past its count load nothing: each call below
// has a constant i, so the test goes at compile time).
fn patch_row(i: u32, k: u32, tap: vec2<u32>) -> f32 {
    if i < PATCH_LOADS {
        return load_patch(k + i * PATCH_ROW_STEP, tap);
    }
    return 0.0;
}

fn tap_row(i: u32, k: u32) -> vec2<u32> {
    if i < PATCH_LOADS {
        return tap_of(k + i * PATCH_ROW_STEP);
    }
    return vec2<u32>(0u);
}

// This invocation's patch values of the tile at k0, named, never an array indexed in a loop
// (measured on an H100: arrays indexed in loops ran 3x slower than the direct kernel). Issued
// together, they are in flight while the tile before is multiplied.
struct Patches {
    rows: vec4<f32>,      // rows 0..3
    more_rows: vec4<f32>, // rows 4..7 (PATCH_LOADS = 8), else zeros
}

// The tap-table entries of this invocation's patch rows of a tile, loaded a tile before the
// patch values they locate where it has four rows: a patch value's load then waits on one memory
// access, not on the table's and then the input's (measured on an H200: YOLOv8n 640 1.254 ->
// 1.079 ms). Eight rows (the 32x128 tile) load their entries with their values: 16 registers
// more cost those layers more than the wait (measured on an H100: 1.040 -> 1.019 ms).
const TAPS_AHEAD: bool = PATCH_LOADS == 4u;

struct Taps {
    t0: vec2<u32>, t1: vec2<u32>, t2: vec2<u32>, t3: vec2<u32>,
    t4: vec2<u32>, t5: vec2<u32>, t6: vec2<u32>, t7: vec2<u32>, // rows 4..7 (PATCH_LOADS = 8)
}

fn load_taps(k0: u32) -> Taps {
    let x = k0 + patch_k;
    return Taps(
        tap_row(0u, x), tap_row(1u, x), tap_row(2u, x), tap_row(3u, x),
        tap_row(4u, x), tap_row(5u, x), tap_row(6u, x), tap_row(7u, x),
    );
}

// The taps of the tile after the one `next_patches` loads (TAPS_AHEAD).
var<private> next_taps: Taps;

fn load_patches(k0: u32, t: Taps) -> Patches {
    let x = k0 + patch_k;
    return Patches(
        vec4<f32>(patch_row(0u, x, t.t0), patch_row(1u, x, t.t1), patch_row(2u, x, t.t2), patch_row(3u, x, t.t3)),
        vec4<f32>(patch_row(4u, x, t.t4), patch_row(5u, x, t.t5), patch_row(6u, x, t.t6), patch_row(7u, x, t.t7)),
    );
}

// The patch values of a workgroup's first tile, at k0 (and the taps of its second).
fn first_patches(k0: u32) -> Patches {
    if TAPS_AHEAD {
        next_taps = load_taps(k0 + TILE_K);
    }
    return load_patches(k0, load_taps(k0));
}

// The patch values of the tile at k0 (and the taps of the next).
fn next_patches(k0: u32) -> Patches {
    if !TAPS_AHEAD {
        return load_patches(k0, load_taps(k0));
    }
    let patches = load_patches(k0, next_taps);
    next_taps = load_taps(k0 + TILE_K);
    return patches;
}
