// Softmax along one axis: one invocation per (outer, inner) row; subtracts the maximum first.
// Each output is written once, after the sum is known: an f16 output never holds an
// intermediate value.

struct Params {
    rows: u32,  // outer * inner
    len: u32,   // size of the softmax axis
    inner: u32, // product of the axes after it
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read_write> out: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let first = (row / params.inner) * params.len * params.inner + row % params.inner;
    var largest = -3.4028234663852886e38;
    for (var k = 0u; k < params.len; k++) {
        largest = max(largest, f32(input[first + k * params.inner]));
    }
    var sum = 0.0;
    for (var k = 0u; k < params.len; k++) {
        sum += exp(f32(input[first + k * params.inner]) - largest);
    }
    for (var k = 0u; k < params.len; k++) {
        let at = first + k * params.inner;
        out[at] = Elem(exp(f32(input[at]) - largest) / sum);
    }
}
