// Elementwise activations applied in place to a flat f32 buffer.

struct Params {
    len: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    data[i] = activate(data[i], 1u);
}

// x * sigmoid(x): the activation of every YOLOv8/YOLO11 convolution block.
@compute @workgroup_size(256)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    data[i] = activate(data[i], 2u);
}
