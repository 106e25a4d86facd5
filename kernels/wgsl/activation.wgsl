// Elementwise activations: out[out_offset + i] = f(input[in_offset + i]). The element offsets let
// a plan read a Split part in place and write into a Concat's slice.

struct Params {
    len: u32,
    in_offset: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read_write> out: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.len {
        out[params.out_offset + i] = Elem(activate(f32(input[params.in_offset + i]), 1u));
    }
}

// x * sigmoid(x): the activation of every YOLOv8/YOLO11 convolution block.
@compute @workgroup_size(256)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.len {
        out[params.out_offset + i] = Elem(activate(f32(input[params.in_offset + i]), 2u));
    }
}
