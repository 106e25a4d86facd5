// ReduceMax over contiguous axes: one invocation per output value, reading `len` values
// `inner` apart.

struct Params {
    count: u32, // outer * inner
    len: u32,   // values reduced into each output
    inner: u32, // product of the axes after the reduced ones
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read_write> out: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    let first = (i / params.inner) * params.len * params.inner + i % params.inner;
    var largest = f32(input[first]);
    for (var k = 1u; k < params.len; k++) {
        largest = max(largest, f32(input[first + k * params.inner]));
    }
    out[i] = Elem(largest);
}
