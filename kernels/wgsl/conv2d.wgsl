// Direct 2-D convolution (grouped and depthwise included) with bias, activation and residual
// (residual.wgsl) fused into the epilogue: one invocation per output element. The reference for correctness; the fast
// implicit-GEMM kernels are measured against it.

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
    tiles: vec4<u32>,  // the tiled kernels' tile table (conv_loads.wgsl), unused here
    residual: vec4<u32>, // what residual_at adds: source, offset
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read> weight: array<Elem>;
@group(0) @binding(2) var<storage, read> bias: array<Elem>;
@group(0) @binding(3) var<storage, read> residual: array<Elem>;
@group(0) @binding(4) var<storage, read_write> out: array<Elem>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    let oh = params.output.z;
    let ow = params.output.w;
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let oc = (i / (ow * oh)) % params.output.y;
    let n = i / (ow * oh * params.output.y);
    let c = params.input.y;
    let h = params.input.z;
    let w = params.input.w;
    let kh = params.kernel.x;
    let kw = params.kernel.y;
    let c_per_group = params.kernel.z;
    let first_channel = (oc / params.kernel.w) * c_per_group;

    var sum = 0.0;
    for (var ic = 0u; ic < c_per_group; ic++) {
        let plane = params.pads.z + (n * c + first_channel + ic) * h * w;
        let taps = (oc * c_per_group + ic) * kh * kw;
        for (var ky = 0u; ky < kh; ky++) {
            let y = i32(oy * params.steps.x + ky * params.steps.z) - i32(params.pads.x);
            if y < 0 || y >= i32(h) {
                continue;
            }
            for (var kx = 0u; kx < kw; kx++) {
                let x = i32(ox * params.steps.y + kx * params.steps.w) - i32(params.pads.y);
                if x >= 0 && x < i32(w) {
                    sum += f32(input[plane + u32(y) * w + u32(x)]) * f32(weight[taps + ky * kw + kx]);
                }
            }
        }
    }
    if params.has_bias != 0u {
        sum += f32(bias[oc]);
    }
    out[params.out_offset + i] = Elem(activate(sum, params.activation) + residual_at(i));
}
