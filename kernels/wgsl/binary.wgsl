// Add, Sub, Mul, Div with numpy broadcasting: each operand is read through strides that are 0
// along its broadcast axes. Rank <= 8.

struct Params {
    count: u32,
    rank: u32,
    _pad0: u32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<Elem>;
@group(0) @binding(1) var<storage, read> b: array<Elem>;
@group(0) @binding(2) var<storage, read_write> out: array<Elem>;
@group(0) @binding(3) var<uniform> params: Params;

// The offsets of output element `i` in `a` and `b`.
fn operands(i: u32) -> vec2<u32> {
    var rest = i;
    var offsets = vec2<u32>(0u, 0u);
    for (var axis = params.rank; axis > 0u; axis--) {
        let ax = axis - 1u;
        let dim = at8(params.shape, ax);
        let index = rest % dim;
        rest = rest / dim;
        offsets += index * vec2<u32>(at8(params.a_strides, ax), at8(params.b_strides, ax));
    }
    return offsets;
}

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[i] = Elem(f32(a[o.x]) + f32(b[o.y]));
    }
}

@compute @workgroup_size(256)
fn sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[i] = Elem(f32(a[o.x]) - f32(b[o.y]));
    }
}

@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[i] = Elem(f32(a[o.x]) * f32(b[o.y]));
    }
}

@compute @workgroup_size(256)
fn div(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[i] = Elem(f32(a[o.x]) / f32(b[o.y]));
    }
}
