// Convolution as an implicit matrix product: for each group, out[m, p] = Σ_k weight[m, k] · x[k, p]
// with k = (input channel, ky, kx) and p an output pixel, where x is the input patch of pixel p
// (im2col), read straight from the input and never stored. A workgroup computes a TILE_M (output
// channels) x TILE_N (pixels) tile; each invocation keeps 4 channels x 4 adjacent pixels of sums
// in four vec4 registers. Weights and patches pass through workgroup memory TILE_K values of k at
// a time, and each step of k reads one vec4 of each. Bias and activation are applied before the
// one store.
//
// The registers are named, never arrays indexed in loops: drivers put such arrays in slow local
// memory when they do not unroll the loop (measured 3x slower than the direct kernel on an H100).
//
// TILE_M, TILE_N and TILE_K come from the variant's preamble (kernels/src/lib.rs): the engine
// picks a variant per layer shape. Same Params as conv2d.wgsl, so one plan feeds either kernel.

const THREADS_M: u32 = TILE_M / 4u;
const THREADS_N: u32 = TILE_N / 4u;
const THREADS: u32 = THREADS_M * THREADS_N;

struct Params {
    count: u32,
    activation: u32, // 0 none, 1 sigmoid, 2 silu
    has_bias: u32,
    out_offset: u32,   // where the output starts in `out` (a slice of a concatenation)
    input: vec4<u32>,  // N, C, H, W
    output: vec4<u32>, // N, M, OH, OW
    kernel: vec4<u32>, // kH, kW, C/group, M/group
    steps: vec4<u32>,  // stride h, stride w, dilation h, dilation w
    pads: vec4<u32>,   // top, left, the input's offset in `input`
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> weight_tile: array<vec4<f32>, TILE_K * THREADS_M>; // [k][m / 4]
var<workgroup> patch_tile: array<vec4<f32>, TILE_K * THREADS_N>;  // [k][p / 4]

// Writes one output channel's four pixels (those inside the image) after bias and activation.
fn store(m: u32, oc: u32, row: u32, p: u32, pixels: u32, sums: vec4<f32>) {
    if m >= params.kernel.w {
        return;
    }
    var shift = 0.0;
    if params.has_bias != 0u {
        shift = bias[oc];
    }
    let v = sums + vec4<f32>(shift);
    let a = params.activation;
    if p + 3u < pixels {
        out[row + p] = activate(v.x, a);
        out[row + p + 1u] = activate(v.y, a);
        out[row + p + 2u] = activate(v.z, a);
        out[row + p + 3u] = activate(v.w, a);
        return;
    }
    if p < pixels {
        out[row + p] = activate(v.x, a);
    }
    if p + 1u < pixels {
        out[row + p + 1u] = activate(v.y, a);
    }
    if p + 2u < pixels {
        out[row + p + 2u] = activate(v.z, a);
    }
}

// Grid: x over pixel tiles, y over channel tiles of one group, z over batch x groups.
@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = params.input.z;
    let w = params.input.w;
    let ow = params.output.w;
    let pixels = params.output.z * ow;
    let kw = params.kernel.y;
    let c_per_group = params.kernel.z;
    let m_per_group = params.kernel.w;
    let groups = params.output.y / m_per_group;
    let taps = params.kernel.x * kw;
    let k_total = c_per_group * taps;
    let n = wg.z / groups;
    let g = wg.z % groups;
    let m0 = wg.y * TILE_M;
    let p0 = wg.x * TILE_N;
    let weight_base = g * m_per_group * k_total;
    let input_base = params.pads.z + (n * params.input.y + g * c_per_group) * h * w;
    // A 1x1 convolution with unit steps and no padding reads its patches as rows of the input.
    let pointwise = taps == 1u && all(params.steps.xy == vec2<u32>(1u)) && params.pads.x == 0u
        && params.pads.y == 0u;

    // The pixel whose patch values this invocation loads, for every step of k.
    let col = lid % TILE_N;
    let p = p0 + col;
    let iy0 = i32((p / ow) * params.steps.x) - i32(params.pads.x);
    let ix0 = i32((p % ow) * params.steps.y) - i32(params.pads.y);

    let tm = lid / THREADS_N; // this invocation's channels: m0 + 4 tm ..
    let tn = lid % THREADS_N; // and pixels: p0 + 4 tn ..
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < k_total; k0 += TILE_K) {
        let kk = lid % TILE_K;
        for (var r = lid / TILE_K; r < TILE_M; r += THREADS / TILE_K) {
            let m = m0 + r;
            let k = k0 + kk;
            var v = 0.0;
            if m < m_per_group && k < k_total {
                v = weight[weight_base + m * k_total + k];
            }
            weight_tile[kk * THREADS_M + r / 4u][r % 4u] = v;
        }
        for (var r = lid / TILE_N; r < TILE_K; r += THREADS / TILE_N) {
            let k = k0 + r;
            var v = 0.0;
            if p < pixels && k < k_total {
                if pointwise {
                    v = input[input_base + k * pixels + p];
                } else {
                    let ci = k / taps;
                    let tap = k % taps;
                    let y = iy0 + i32((tap / kw) * params.steps.z);
                    let x = ix0 + i32((tap % kw) * params.steps.w);
                    if y >= 0 && y < i32(h) && x >= 0 && x < i32(w) {
                        v = input[input_base + ci * h * w + u32(y) * w + u32(x)];
                    }
                }
            }
            patch_tile[r * THREADS_N + col / 4u][col % 4u] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            let a = weight_tile[k * THREADS_M + tm];
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
    let row = params.out_offset + (n * params.output.y + oc) * pixels;
    let q = p0 + 4u * tn;
    store(m, oc, row, q, pixels, acc0);
    store(m + 1u, oc + 1u, row + pixels, q, pixels, acc1);
    store(m + 2u, oc + 2u, row + 2u * pixels, q, pixels, acc2);
    store(m + 3u, oc + 3u, row + 3u * pixels, q, pixels, acc3);
}
