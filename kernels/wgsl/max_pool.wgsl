// 2-D max pooling (ceil_mode 0): one invocation per output element; padding never wins. Input
// and output start at an element offset: a resident network reads and writes Concat slices in
// place (SPPF's pools).

struct Params {
    count: u32,
    in_offset: u32,
    out_offset: u32,
    _pad0: u32,
    input: vec4<u32>,  // N, C, H, W
    output: vec4<u32>, // N, C, OH, OW
    kernel: vec4<u32>, // kH, kW
    steps: vec4<u32>,  // stride h, stride w, dilation h, dilation w
    pads: vec4<u32>,   // top, left
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read_write> out: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

// The largest value of output element `i`'s window, read from `input`, or from `out` where the
// input lies in the output's own buffer (`from_out`).
fn window_max(i: u32, from_out: bool) -> f32 {
    let oh = params.output.z;
    let ow = params.output.w;
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = params.in_offset + (i / (ow * oh)) * params.input.z * params.input.w;
    let h = i32(params.input.z);
    let w = i32(params.input.w);
    var best = -3.4028234663852886e38;
    for (var ky = 0u; ky < params.kernel.x; ky++) {
        let y = i32(oy * params.steps.x + ky * params.steps.z) - i32(params.pads.x);
        if y < 0 || y >= h {
            continue;
        }
        for (var kx = 0u; kx < params.kernel.y; kx++) {
            let x = i32(ox * params.steps.y + kx * params.steps.w) - i32(params.pads.y);
            if x >= 0 && x < w {
                let at = plane + u32(y * w + x);
                var v: Elem;
                if from_out {
                    v = out[at];
                } else {
                    v = input[at];
                }
                best = max(best, f32(v));
            }
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        out[params.out_offset + i] = Elem(window_max(i, false));
    }
}

// The pool of a value that lies in its output's buffer (SPPF's chained pools, all in one Concat's
// output): one launch may not bind a buffer both read-only and writable, so the input is read
// through `out`, and its own binding is a stand-in.
@compute @workgroup_size(256)
fn main_from_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        out[params.out_offset + i] = Elem(window_max(i, true));
    }
}
