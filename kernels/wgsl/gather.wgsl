// Gather along one axis: out[o, j, r] = input[o, indices[j], r], indices already non-negative.

struct Params {
    count: u32,
    indices: u32, // number of indices
    len: u32,     // size of the gathered axis
    inner: u32,   // product of the axes after it
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<Elem>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    let r = i % params.inner;
    let j = (i / params.inner) % params.indices;
    let o = i / (params.inner * params.indices);
    out[i] = input[(o * params.len + indices[j]) * params.inner + r];
}
