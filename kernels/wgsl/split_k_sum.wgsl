// The second half of a split-k convolution (conv_gemm.wgsl): adds the f32 partial sums of every
// slice of the reduction, then the bias, the activation and the residual (residual.wgsl), and
// stores the output. One invocation per output value; slice s holds its partial sums at
// s * count + i.

struct Params {
    count: u32,      // output values: N x M x OH x OW
    slices: u32,
    activation: u32, // 0 none, 1 sigmoid, 2 silu
    has_bias: u32,
    out_offset: u32, // where the output starts in `out` (a slice of a concatenation)
    channels: u32,   // M
    pixels: u32,     // OH x OW
    _pad: u32,
    residual: vec4<u32>, // what residual_at adds: source, offset
}

@group(0) @binding(0) var<storage, read> partials_f32: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<Elem>;
@group(0) @binding(2) var<storage, read> residual: array<Elem>;
@group(0) @binding(3) var<storage, read_write> out: array<Elem>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < params.slices; s++) {
        sum += partials_f32[s * params.count + i];
    }
    if params.has_bias != 0u {
        sum += f32(bias[(i / params.pixels) % params.channels]);
    }
    out[params.out_offset + i] = Elem(activate(sum, params.activation) + residual_at(i));
}
