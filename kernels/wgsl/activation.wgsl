// Elementwise activations applied in place to a flat f32 buffer.
// One invocation per element; dispatches wider than 65,535 workgroups spill into y,
// so the flat index is rebuilt from both dimensions.

struct Params {
    len: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

const WORKGROUP_SIZE: u32 = 256u;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(256)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    data[i] = 1.0 / (1.0 + exp(-data[i]));
}

// x * sigmoid(x): the activation of every YOLOv8/YOLO11 convolution block.
@compute @workgroup_size(256)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.len {
        return;
    }
    let x = data[i];
    data[i] = x / (1.0 + exp(-x));
}
