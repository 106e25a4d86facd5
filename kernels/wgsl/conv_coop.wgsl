// conv_gemm.wgsl's implicit-GEMM convolution with its products on the GPU's matrix units (tensor
// cores), through wgpu's cooperative matrices: same Params, bindings, loads and split-k. Tensors
// stay in their precision in memory; each tile of weights and patches is rounded to f16 in
// workgroup memory and multiplied 16x16x16 at a time into f32 sums (the precision of PyTorch's
// default TF32 convolutions: 10 bits of mantissa per factor, f32 accumulation).
//
// A workgroup is 8 subgroups of 32 invocations (the engine runs this kernel only where every
// subgroup has 32) and computes a 64 (channels) x 64 (pixels) tile: subgroup s the 16 channels
// 16 (s % 4) .. by the 32 pixels 32 (s / 4) .., two 16x16 accumulators. Each invocation loads four
// weights and four patch values per tile of k, as conv_gemm.wgsl's 64x64 tiling does; the sums
// leave through workgroup memory, a 16x16 block per subgroup at a time, for the bias, the
// activation and the edges of the image.

const THREADS: u32 = 256u;
const SUBGROUP: u32 = 32u;
const WEIGHT_ROW_STEP: u32 = THREADS / TILE_K; // 16
const PATCH_ROW_STEP: u32 = THREADS / TILE_N;  // 4
// Rows of both tiles are 8 halves (16 bytes) longer than their values: matrix loads read rows of
// 16 bytes, which then fall in distinct banks of workgroup memory.
const WEIGHT_ROW: u32 = TILE_K + 8u;
const PATCH_ROW: u32 = TILE_N + 8u;
const BLOCK: u32 = 16u;

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
@group(0) @binding(3) var<storage, read> taps_table: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> weight_tile: array<f16, TILE_M * WEIGHT_ROW>; // [m][k]
var<workgroup> patch_tile: array<f16, TILE_K * PATCH_ROW>;   // [k][p]
var<workgroup> sums: array<f32, THREADS / SUBGROUP * BLOCK * BLOCK>; // a 16x16 block per subgroup

fn reduction_length() -> u32 {
    return params.kernel.z * params.kernel.x * params.kernel.y;
}

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
    let y = u32(iy0 + i32(tap >> 16u));
    let x = u32(ix0 + i32(tap & 0xffffu));
    if y < params.input.z && x < params.input.w {
        return f32(input[input_base + channel + y * params.input.w + x]);
    }
    return 0.0;
}

// Writes this subgroup's 16x16 block of sums (in `sums` from `first`) to channels m .. and pixels
// p .. of the output, after bias and activation, or, split, as partial sums; lane `lane` writes
// column lane % 16 of every other row.
fn store_block(first: u32, lane: u32, m: u32, oc: u32, row: u32, p: u32, pixels: u32) {
    let column = lane % BLOCK;
    let q = p + column;
    for (var r = lane / BLOCK; r < BLOCK; r += SUBGROUP / BLOCK) {
        if m + r < params.kernel.w && q < pixels {
            var v = sums[first + r * BLOCK + column];
            if params.has_bias != 0u && !SPLIT_K {
                v += f32(bias[oc + r]);
            }
            put(row + r * pixels + q, activate(v, select(params.activation, 0u, SPLIT_K)));
        }
    }
}

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let h = params.input.z;
    let w = params.input.w;
    let ow = params.output.w;
    let pixels = params.output.z * ow;
    let c_per_group = params.kernel.z;
    let m_per_group = params.kernel.w;
    let groups = params.output.y / m_per_group;
    let taps = params.kernel.x * params.kernel.y;
    let k_total = reduction_length();
    let images = params.output.x * groups;
    let slice = wg.z / images;
    let n = (wg.z % images) / groups;
    let g = wg.z % groups;
    let k_tiles = (k_total + TILE_K - 1u) / TILE_K;
    let slices = max(params.pads.w, 1u);
    let tiles_per_slice = (k_tiles + slices - 1u) / slices;
    let k_begin = min(slice * tiles_per_slice, k_tiles) * TILE_K;
    let k_end = min(k_begin + tiles_per_slice * TILE_K, k_total);
    let m0 = wg.y * TILE_M;
    let p0 = wg.x * TILE_N;
    weight_base = g * m_per_group * k_total;
    input_base = params.pads.z + (n * params.input.y + g * c_per_group) * h * w;
    pointwise = taps == 1u && all(params.steps.xy == vec2<u32>(1u)) && params.pads.x == 0u
        && params.pads.y == 0u;

    let kk = lid % TILE_K;
    let wr = lid / TILE_K;
    let col = lid % TILE_N;
    let pr = lid / TILE_N;
    patch_pixel = p0 + col;
    iy0 = i32((patch_pixel / ow) * params.steps.x) - i32(params.pads.x);
    ix0 = i32((patch_pixel % ow) * params.steps.y) - i32(params.pads.y);
    let w_slot = wr * WEIGHT_ROW + kk;
    let p_slot = pr * PATCH_ROW + col;

    // This subgroup's blocks: channels 16 (subgroup % 4) .., pixels 32 (subgroup / 4) ...
    let block_m = BLOCK * (subgroup % 4u);
    let block_p = 2u * BLOCK * (subgroup / 4u);
    var acc0 = coop_mat16x16<f32, C>();
    var acc1 = coop_mat16x16<f32, C>();

    var w0 = load_weight(m0 + wr, k_begin + kk);
    var w1 = load_weight(m0 + wr + WEIGHT_ROW_STEP, k_begin + kk);
    var w2 = load_weight(m0 + wr + 2u * WEIGHT_ROW_STEP, k_begin + kk);
    var w3 = load_weight(m0 + wr + 3u * WEIGHT_ROW_STEP, k_begin + kk);
    var x0 = load_patch(k_begin + pr);
    var x1 = load_patch(k_begin + pr + PATCH_ROW_STEP);
    var x2 = load_patch(k_begin + pr + 2u * PATCH_ROW_STEP);
    var x3 = load_patch(k_begin + pr + 3u * PATCH_ROW_STEP);
    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        weight_tile[w_slot] = f16(w0);
        weight_tile[w_slot + WEIGHT_ROW_STEP * WEIGHT_ROW] = f16(w1);
        weight_tile[w_slot + 2u * WEIGHT_ROW_STEP * WEIGHT_ROW] = f16(w2);
        weight_tile[w_slot + 3u * WEIGHT_ROW_STEP * WEIGHT_ROW] = f16(w3);
        patch_tile[p_slot] = f16(x0);
        patch_tile[p_slot + PATCH_ROW_STEP * PATCH_ROW] = f16(x1);
        patch_tile[p_slot + 2u * PATCH_ROW_STEP * PATCH_ROW] = f16(x2);
        patch_tile[p_slot + 3u * PATCH_ROW_STEP * PATCH_ROW] = f16(x3);
        workgroupBarrier();
        let next = k0 + TILE_K;
        w0 = load_weight(m0 + wr, next + kk);
        w1 = load_weight(m0 + wr + WEIGHT_ROW_STEP, next + kk);
        w2 = load_weight(m0 + wr + 2u * WEIGHT_ROW_STEP, next + kk);
        w3 = load_weight(m0 + wr + 3u * WEIGHT_ROW_STEP, next + kk);
        x0 = load_patch(next + pr);
        x1 = load_patch(next + pr + PATCH_ROW_STEP);
        x2 = load_patch(next + pr + 2u * PATCH_ROW_STEP);
        x3 = load_patch(next + pr + 3u * PATCH_ROW_STEP);
        let a = coopLoadT<coop_mat16x16<f16, A>>(&weight_tile[block_m * WEIGHT_ROW], WEIGHT_ROW);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&patch_tile[block_p], PATCH_ROW);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&patch_tile[block_p + BLOCK], PATCH_ROW);
        acc0 = coopMultiplyAdd(a, b0, acc0);
        acc1 = coopMultiplyAdd(a, b1, acc1);
        workgroupBarrier();
    }

    let m = m0 + block_m;
    let oc = g * m_per_group + m;
    let row = select(params.out_offset, slice * params.count, SPLIT_K)
        + (n * params.output.y + oc) * pixels;
    let first = subgroup * BLOCK * BLOCK;
    coopStoreT(acc0, &sums[first], BLOCK);
    workgroupBarrier();
    store_block(first, lane, m, oc, row, p0 + block_p, pixels);
    workgroupBarrier();
    coopStoreT(acc1, &sums[first], BLOCK);
    workgroupBarrier();
    store_block(first, lane, m, oc, row, p0 + block_p + BLOCK, pixels);
}
