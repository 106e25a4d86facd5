// Convolution as an implicit matrix product: for each group, out[m, p] = Σ_k weight[m, k] · x[k, p]
// with k = (input channel, ky, kx) and p an output pixel, where x is the input patch of pixel p
// (im2col), read straight from the input and never stored. A workgroup computes a TILE_M (output
// channels) x TILE_N (pixels) tile; each invocation keeps 4 channels x 4 adjacent pixels of sums
// in four vec4 registers. Weights and patches pass through workgroup memory TILE_K values of k at
// a time, and each step of k reads one vec4 of each. Bias and activation are applied before the
// one store.
//
// Registers are named, never arrays indexed in loops, and each invocation loads exactly four
// weights and four patch values per tile, all issued before they are needed: the next tile's
// loads are in flight while the current one is multiplied. (Measured on an H100: arrays indexed
// in loops ran 3x slower than the direct kernel, and loads issued one after another in a loop
// made every tile cost a memory latency per load, whatever the layer's size.)
//
// A patch value's place in the input comes from the layer's tap table (binding 3, made by the
// plan): for each k, the input channel's offset and the tap's (dy, dx). Dividing k by the taps
// and the tap by the kernel width here, per loaded value, cost more integer work than the
// products it feeds.
//
// TILE_M, TILE_N and TILE_K come from the variant's preamble (kernels/src/lib.rs), with
// (TILE_M / 4) x (TILE_N / 4) invocations, TILE_M = 4 x invocations / TILE_K and
// TILE_K = 4 x invocations / TILE_N (four loads of each kind). Same Params as conv2d.wgsl, so one
// plan feeds either kernel.
//
// Split-k: a layer with few tiles leaves most of a large GPU idle while each workgroup walks its
// whole reduction. The preamble's SPLIT_K variant gives each workgroup one of `params.pads.w`
// consecutive slices of the k tiles (grid z: slice x batch x groups) and writes raw f32 partial
// sums, slice after slice (`put`, binding 3); split_k_sum.wgsl adds them, the bias and the
// activation. Otherwise `put` stores the outputs.

const THREADS_M: u32 = TILE_M / 4u;
const THREADS_N: u32 = TILE_N / 4u;
const THREADS: u32 = THREADS_M * THREADS_N;
const WEIGHT_ROW_STEP: u32 = THREADS / TILE_K; // TILE_M / 4
const PATCH_ROW_STEP: u32 = THREADS / TILE_N;  // TILE_K / 4
// Rows of the weight tile are one vec4 longer than their THREADS_M values: the invocations of a
// warp store weights of consecutive k at one m, which in rows of 64 floats (the 64x64 tiling) all
// fell in one bank of workgroup memory (16-way conflicts; measured on an H100, the padding took
// the 64x64 convolutions from 0.873 to 0.807 ms).
const WEIGHT_ROW: u32 = THREADS_M + 1u;

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
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read> weight: array<Elem>;
@group(0) @binding(2) var<storage, read> bias: array<Elem>;
// Per k, two words: the input channel's offset (channel x H x W), then (dy << 16) | dx, the tap's
// offsets in rows and columns (dilation included).
@group(0) @binding(3) var<storage, read> taps_table: array<u32>;
// Binding 4, the sums' destination, and `put` come from the variant's preamble.
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> weight_tile: array<vec4<f32>, TILE_K * WEIGHT_ROW>; // [k][m / 4]
var<workgroup> patch_tile: array<vec4<f32>, TILE_K * THREADS_N>;  // [k][p / 4]

// Writes one output channel's four pixels (those inside the image) after bias and activation,
// or, split, their partial sums as they are.
fn store(m: u32, oc: u32, row: u32, p: u32, pixels: u32, sums: vec4<f32>) {
    if m >= params.kernel.w {
        return;
    }
    var shift = 0.0;
    if params.has_bias != 0u && !SPLIT_K {
        shift = f32(bias[oc]);
    }
    let v = sums + vec4<f32>(shift);
    let a = select(params.activation, 0u, SPLIT_K);
    if p + 3u < pixels {
        put(row + p, activate(v.x, a));
        put(row + p + 1u, activate(v.y, a));
        put(row + p + 2u, activate(v.z, a));
        put(row + p + 3u, activate(v.w, a));
        return;
    }
    if p < pixels {
        put(row + p, activate(v.x, a));
    }
    if p + 1u < pixels {
        put(row + p + 1u, activate(v.y, a));
    }
    if p + 2u < pixels {
        put(row + p + 2u, activate(v.z, a));
    }
}

// Values summed per output: read from the uniform, so that browsers' uniformity analysis sees the
// loop around the barriers run the same number of times in every invocation (a private copy
// would not be seen so, and the pipeline would fail in Chromium).
fn reduction_length() -> u32 {
    return params.kernel.z * params.kernel.x * params.kernel.y;
}

// What every load of this invocation needs, set once at the start of `main`.
var<private> weight_base: u32;
var<private> input_base: u32;
var<private> pointwise: bool;
var<private> patch_pixel: u32;
var<private> iy0: i32;
var<private> ix0: i32;

fn load_weight(m: u32, k: u32) -> f32 {
    let k_total = reduction_length();
    if m < params.kernel.w && k < k_total {
        return f32(weight[weight_base + m * k_total + k]);
    }
    return 0.0;
}

// Value k of the patch of this invocation's pixel; zero outside the image (padding).
fn load_patch(k: u32) -> f32 {
    let pixels = params.output.z * params.output.w;
    if patch_pixel >= pixels || k >= reduction_length() {
        return 0.0;
    }
    if pointwise {
        return f32(input[input_base + k * pixels + patch_pixel]);
    }
    let channel = taps_table[2u * k];
    let tap = taps_table[2u * k + 1u];
    // Negative rows and columns wrap to large values: one unsigned comparison each.
    let y = u32(iy0 + i32(tap >> 16u));
    let x = u32(ix0 + i32(tap & 0xffffu));
    if y < params.input.z && x < params.input.w {
        return f32(input[input_base + channel + y * params.input.w + x]);
    }
    return 0.0;
}

// Grid: x over pixel tiles, y over channel tiles of one group, z over slices of k x batch x
// groups.
@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = params.input.z;
    let w = params.input.w;
    let ow = params.output.w;
    let pixels = params.output.z * ow;
    let c_per_group = params.kernel.z;
    let m_per_group = params.kernel.w;
    let groups = params.output.y / m_per_group;
    let taps = params.kernel.x * params.kernel.y;
    let k_total = reduction_length();
    let images = params.output.x * groups; // batch x groups
    let slice = wg.z / images;
    let n = (wg.z % images) / groups;
    let g = wg.z % groups;
    // This workgroup's k tiles: all, or its slice of them (the last slices may be empty).
    let k_tiles = (k_total + TILE_K - 1u) / TILE_K;
    let slices = max(params.pads.w, 1u);
    let tiles_per_slice = (k_tiles + slices - 1u) / slices;
    let k_begin = min(slice * tiles_per_slice, k_tiles) * TILE_K;
    let k_end = min(k_begin + tiles_per_slice * TILE_K, k_total);
    let m0 = wg.y * TILE_M;
    let p0 = wg.x * TILE_N;
    weight_base = g * m_per_group * k_total;
    input_base = params.pads.z + (n * params.input.y + g * c_per_group) * h * w;
    // A 1x1 convolution with unit steps and no padding reads its patches as rows of the input.
    pointwise = taps == 1u && all(params.steps.xy == vec2<u32>(1u)) && params.pads.x == 0u
        && params.pads.y == 0u;

    // This invocation loads weights (rows wr + i WEIGHT_ROW_STEP, column kk) and patch values
    // (rows pr + i PATCH_ROW_STEP of its pixel's column) of every tile.
    let kk = lid % TILE_K;
    let wr = lid / TILE_K;
    let col = lid % TILE_N;
    let pr = lid / TILE_N;
    patch_pixel = p0 + col;
    iy0 = i32((patch_pixel / ow) * params.steps.x) - i32(params.pads.x);
    ix0 = i32((patch_pixel % ow) * params.steps.y) - i32(params.pads.y);
    let w_slot = kk * WEIGHT_ROW + wr / 4u;
    let w_lane = wr % 4u;
    let p_slot = pr * THREADS_N + col / 4u;
    let p_lane = col % 4u;

    let tm = lid / THREADS_N; // this invocation's sums: channels m0 + 4 tm ..
    let tn = lid % THREADS_N; // by pixels p0 + 4 tn ..
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    var w0 = load_weight(m0 + wr, k_begin + kk);
    var w1 = load_weight(m0 + wr + WEIGHT_ROW_STEP, k_begin + kk);
    var w2 = load_weight(m0 + wr + 2u * WEIGHT_ROW_STEP, k_begin + kk);
    var w3 = load_weight(m0 + wr + 3u * WEIGHT_ROW_STEP, k_begin + kk);
    var x0 = load_patch(k_begin + pr);
    var x1 = load_patch(k_begin + pr + PATCH_ROW_STEP);
    var x2 = load_patch(k_begin + pr + 2u * PATCH_ROW_STEP);
    var x3 = load_patch(k_begin + pr + 3u * PATCH_ROW_STEP);
    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        weight_tile[w_slot][w_lane] = w0;
        weight_tile[w_slot + WEIGHT_ROW_STEP / 4u][w_lane] = w1;
        weight_tile[w_slot + 2u * WEIGHT_ROW_STEP / 4u][w_lane] = w2;
        weight_tile[w_slot + 3u * WEIGHT_ROW_STEP / 4u][w_lane] = w3;
        patch_tile[p_slot][p_lane] = x0;
        patch_tile[p_slot + PATCH_ROW_STEP * THREADS_N][p_lane] = x1;
        patch_tile[p_slot + 2u * PATCH_ROW_STEP * THREADS_N][p_lane] = x2;
        patch_tile[p_slot + 3u * PATCH_ROW_STEP * THREADS_N][p_lane] = x3;
        workgroupBarrier();
        // The next tile's loads, in flight during the products below.
        let next = k0 + TILE_K;
        w0 = load_weight(m0 + wr, next + kk);
        w1 = load_weight(m0 + wr + WEIGHT_ROW_STEP, next + kk);
        w2 = load_weight(m0 + wr + 2u * WEIGHT_ROW_STEP, next + kk);
        w3 = load_weight(m0 + wr + 3u * WEIGHT_ROW_STEP, next + kk);
        x0 = load_patch(next + pr);
        x1 = load_patch(next + pr + PATCH_ROW_STEP);
        x2 = load_patch(next + pr + 2u * PATCH_ROW_STEP);
        x3 = load_patch(next + pr + 3u * PATCH_ROW_STEP);
        for (var k = 0u; k < TILE_K; k++) {
            let a = weight_tile[k * WEIGHT_ROW + tm];
            let b = patch_tile[k * THREADS_N + tn];
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }

    let m = m0 + 4u * tm;
    let oc = g * m_per_group + m;
    // Split, slice after slice of partial sums, each the output's size (params.count).
    let row = select(params.out_offset, slice * params.count, SPLIT_K)
        + (n * params.output.y + oc) * pixels;
    let q = p0 + 4u * tn;
    store(m, oc, row, q, pixels, acc0);
    store(m + 1u, oc + 1u, row + pixels, q, pixels, acc1);
    store(m + 2u, oc + 2u, row + 2u * pixels, q, pixels, acc2);
    store(m + 3u, oc + 3u, row + 3u * pixels, q, pixels, acc3);
}
