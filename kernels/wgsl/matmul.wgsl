// Batched matrix product with broadcast batch axes: one invocation per output element.
// Batch rank <= 8; strides count whole matrices.

struct Params {
    count: u32,
    m: u32,
    n: u32,
    k: u32,
    batch_rank: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    batch: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<Elem>;
@group(0) @binding(1) var<storage, read> b: array<Elem>;
@group(0) @binding(2) var<storage, read_write> out: array<Elem>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    let col = i % params.n;
    let row = (i / params.n) % params.m;
    var rest = i / (params.n * params.m);
    var a_matrix = 0u;
    var b_matrix = 0u;
    for (var axis = params.batch_rank; axis > 0u; axis--) {
        let ax = axis - 1u;
        let dim = at8(params.batch, ax);
        let index = rest % dim;
        rest = rest / dim;
        a_matrix += index * at8(params.a_strides, ax);
        b_matrix += index * at8(params.b_strides, ax);
    }
    let a_row = a_matrix * params.m * params.k + row * params.k;
    let b_col = b_matrix * params.k * params.n + col;
    var sum = 0.0;
    for (var p = 0u; p < params.k; p++) {
        sum += f32(a[a_row + p]) * f32(b[b_col + p * params.n]);
    }
    out[i] = Elem(sum);
}
