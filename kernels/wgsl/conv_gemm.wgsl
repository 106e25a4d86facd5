// Convolution as an implicit matrix product: for each group, out[m, p] = Σ_k weight[m, k] · x[k, p]
// with k = (input channel, ky, kx) and p an output pixel, where x is the input patch of pixel p
// (im2col), read straight from the input and never stored. A workgroup of 16x16 invocations
// computes a TILE_M (output channels) x TILE_N (pixels) tile; each invocation keeps a
// THREAD_M x THREAD_N block of sums in registers. Weights and patches pass through workgroup
// memory TILE_K values of k at a time. Bias and activation are applied before the one store.
//
// TILE_M, TILE_N and TILE_K come from the variant's preamble (kernels/src/lib.rs): the engine
// picks a variant per layer shape. Same Params as conv2d.wgsl, so one plan feeds either kernel.

const THREAD_M: u32 = TILE_M / 16u;
const THREAD_N: u32 = TILE_N / 16u;
// Odd row length: the column writes of the weight tile fall in different banks.
const W_STRIDE: u32 = TILE_M + 1u;

struct Params {
    count: u32,
    activation: u32, // 0 none, 1 sigmoid, 2 silu
    has_bias: u32,
    _pad: u32,
    input: vec4<u32>,  // N, C, H, W
    output: vec4<u32>, // N, M, OH, OW
    kernel: vec4<u32>, // kH, kW, C/group, M/group
    steps: vec4<u32>,  // stride h, stride w, dilation h, dilation w
    pads: vec4<u32>,   // top, left
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> weight_tile: array<f32, TILE_K * W_STRIDE>; // [k][m]
var<workgroup> patch_tile: array<f32, TILE_K * TILE_N>;    // [k][p]

// Grid: x over pixel tiles, y over channel tiles of one group, z over batch x groups.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = params.input.z;
    let w = params.input.w;
    let ow = params.output.w;
    let pixels = params.output.z * ow;
    let kh = params.kernel.x;
    let kw = params.kernel.y;
    let c_per_group = params.kernel.z;
    let m_per_group = params.kernel.w;
    let groups = params.output.y / m_per_group;
    let taps = kh * kw;
    let k_total = c_per_group * taps;
    let n = wg.z / groups;
    let g = wg.z % groups;
    let m0 = wg.y * TILE_M;
    let p0 = wg.x * TILE_N;
    let weight_base = g * m_per_group * k_total;
    let input_base = (n * params.input.y + g * c_per_group) * h * w;
    // A 1x1 convolution with unit steps and no padding reads its patches as rows of the input.
    let pointwise = taps == 1u && all(params.steps == vec4<u32>(1u)) && params.pads.x == 0u
        && params.pads.y == 0u;

    // The pixel whose patch this invocation loads, for every k step.
    let col = lid % TILE_N;
    let p = p0 + col;
    let oy = p / ow;
    let ox = p % ow;
    let iy0 = i32(oy * params.steps.x) - i32(params.pads.x);
    let ix0 = i32(ox * params.steps.y) - i32(params.pads.y);

    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<f32, THREAD_M * THREAD_N>;
    for (var i = 0u; i < THREAD_M * THREAD_N; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < k_total; k0 += TILE_K) {
        let kk = lid % TILE_K;
        for (var r = lid / TILE_K; r < TILE_M; r += 256u / TILE_K) {
            let m = m0 + r;
            let k = k0 + kk;
            var v = 0.0;
            if m < m_per_group && k < k_total {
                v = weight[weight_base + m * k_total + k];
            }
            weight_tile[kk * W_STRIDE + r] = v;
        }
        for (var r = lid / TILE_N; r < TILE_K; r += 256u / TILE_N) {
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
            patch_tile[r * TILE_N + col] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            var a: array<f32, THREAD_M>;
            var b: array<f32, THREAD_N>;
            for (var i = 0u; i < THREAD_M; i++) {
                a[i] = weight_tile[k * W_STRIDE + ty + i * 16u];
            }
            for (var j = 0u; j < THREAD_N; j++) {
                b[j] = patch_tile[k * TILE_N + tx + j * 16u];
            }
            for (var i = 0u; i < THREAD_M; i++) {
                for (var j = 0u; j < THREAD_N; j++) {
                    acc[i * THREAD_N + j] = fma(a[i], b[j], acc[i * THREAD_N + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < THREAD_M; i++) {
        let m = m0 + ty + i * 16u;
        if m >= m_per_group {
            break;
        }
        let oc = g * m_per_group + m;
        var shift = 0.0;
        if params.has_bias != 0u {
            shift = bias[oc];
        }
        let row = (n * params.output.y + oc) * pixels;
        for (var j = 0u; j < THREAD_N; j++) {
            let q = p0 + tx + j * 16u;
            if q < pixels {
                out[row + q] = activate(acc[i * THREAD_N + j] + shift, params.activation);
            }
        }
    }
}
