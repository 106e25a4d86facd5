// Convolution as an implicit matrix product: for each group, out[m, p] = Σ_k weight[m, k] · x[k, p]
// with k = (input channel, ky, kx) and p an output pixel, where x is the input patch of pixel p
// (im2col), read straight from the input and never stored. A workgroup computes a TILE_M (output
// channels) x TILE_N (pixels) tile; each invocation keeps 4 channels x 4 adjacent pixels of sums
// in four vec4 registers. Weights and patches pass through workgroup memory TILE_K values of k at
// a time, and each step of k reads one vec4 of each. Bias and activation are applied before the
// one store.
//
// Registers are named, never arrays indexed in loops, and each invocation loads exactly four
// weights and four patch values per tile (the patches: conv_loads.wgsl), all issued before they
// are needed: the next tile's loads are in flight while the current one is multiplied. (Measured
// on an H100: loads issued one after another in a loop made every tile cost a memory latency per
// load, whatever the layer's size.)
//
// TILE_M, TILE_N and TILE_K come from the variant's preamble (kernels/src/lib.rs). Same Params as
// conv2d.wgsl, so one plan feeds either kernel.
//
// Split-k: a layer with few tiles leaves most of a large GPU idle while each workgroup walks its
// whole reduction. The preamble's SPLIT_K variant gives each workgroup one of `params.pads.w`
// consecutive slices of the k tiles (grid z: slice x batch x groups) and writes raw f32 partial
// sums, slice after slice (`put`, binding 5); split_k_sum.wgsl adds them, the bias, the activation
// and the residual. Otherwise `put` stores the outputs, the residual added (residual.wgsl).

// The weights as the model has them, [M][C/group x kH x kW]; each invocation loads four of each
// tile, rows weight_m + i WEIGHT_ROW_STEP of column weight_k.
@group(0) @binding(1) var<storage, read> weight: array<Elem>;
const WEIGHT_ROW_STEP: u32 = THREADS / TILE_K;
var<private> weight_base: u32;
var<private> weight_m: u32;
var<private> weight_k: u32;

fn load_weight(m: u32, k: u32) -> f32 {
    let k_total = reduction_length();
    if m < params.kernel.w && k < k_total {
        return f32(weight[weight_base + m * k_total + k]);
    }
    return 0.0;
}

// This invocation's weights of the tile at k0.
fn load_weights(k0: u32) -> vec4<f32> {
    let k = k0 + weight_k;
    return vec4<f32>(
        load_weight(weight_m, k),
        load_weight(weight_m + WEIGHT_ROW_STEP, k),
        load_weight(weight_m + 2u * WEIGHT_ROW_STEP, k),
        load_weight(weight_m + 3u * WEIGHT_ROW_STEP, k),
    );
}

const THREADS_M: u32 = TILE_M / 4u;
const THREADS_N: u32 = TILE_N / 4u;
// Rows of the weight tile are one vec4 longer than their THREADS_M values: the invocations of a
// warp store weights of consecutive k at one m, which in rows of 64 floats (the 64x64 tiling) all
// fell in one bank of workgroup memory (16-way conflicts; measured on an H100, the padding took
// the 64x64 convolutions from 0.873 to 0.807 ms).
const WEIGHT_ROW: u32 = THREADS_M + 1u;

var<workgroup> weight_tile: array<vec4<f32>, TILE_K * WEIGHT_ROW>; // [k][m / 4]
var<workgroup> patch_tile: array<vec4<f32>, TILE_K * THREADS_N>;  // [k][p / 4]

// Writes one output channel's four pixels (those inside the image) after bias and activation,
// or, split, their partial sums as they are.
fn store(m: u32, m_end: u32, oc: u32, row: u32, p: u32, pixels: u32, sums: vec4<f32>) {
    if m >= m_end {
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

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let work = start(wg, lid);
    weight_base = work.g * params.kernel.w * reduction_length();
    weight_m = work.m0 + lid / TILE_K;
    weight_k = lid % TILE_K;
    let pixels = params.output.z * params.output.w;
    // Where this invocation's loads go in the tiles (rows of four consecutive m or p).
    let w_slot = (lid % TILE_K) * WEIGHT_ROW + (lid / TILE_K) / 4u;
    let w_lane = (lid / TILE_K) % 4u;
    let p_slot = (lid / TILE_N) * THREADS_N + (lid % TILE_N) / 4u;
    let p_lane = lid % 4u;

    let tm = lid / THREADS_N; // this invocation's sums: channels m0 + 4 tm ..
    let tn = lid % THREADS_N; // by pixels p0 + 4 tn ..
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    var weights = load_weights(work.k_begin);
    var patches = first_patches(work.k_begin);
    for (var k0 = work.k_begin; k0 < work.k_end; k0 += TILE_K) {
        weight_tile[w_slot][w_lane] = weights.x;
        weight_tile[w_slot + WEIGHT_ROW_STEP / 4u][w_lane] = weights.y;
        weight_tile[w_slot + 2u * WEIGHT_ROW_STEP / 4u][w_lane] = weights.z;
        weight_tile[w_slot + 3u * WEIGHT_ROW_STEP / 4u][w_lane] = weights.w;
        patch_tile[p_slot][p_lane] = patches.rows.x;
        patch_tile[p_slot + PATCH_ROW_STEP * THREADS_N][p_lane] = patches.rows.y;
        patch_tile[p_slot + 2u * PATCH_ROW_STEP * THREADS_N][p_lane] = patches.rows.z;
        patch_tile[p_slot + 3u * PATCH_ROW_STEP * THREADS_N][p_lane] = patches.rows.w;
        workgroupBarrier();
        // The next tile's loads, in flight during the products below.
        weights = load_weights(k0 + TILE_K);
        patches = next_patches(k0 + TILE_K);
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

    let m = work.m0 + 4u * tm;
    let oc = work.g * params.kernel.w + m;
    // Split, slice after slice of partial sums, each the output's size (params.count).
    let row = select(params.out_offset, work.slice * params.count, SPLIT_K)
        + (work.n * params.output.y + oc) * pixels;
    let q = work.p0 + 4u * tn;
    store(m, work.m_end, oc, row, q, pixels, acc0);
    store(m + 1u, work.m_end, oc + 1u, row + pixels, q, pixels, acc1);
    store(m + 2u, work.m_end, oc + 2u, row + 2u * pixels, q, pixels, acc2);
    store(m + 3u, work.m_end, oc + 3u, row + 3u * pixels, q, pixels, acc3);
}
