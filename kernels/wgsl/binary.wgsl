// Add, Sub, Mul, Div with numpy broadcasting: each operand is read through strides that are 0
// along its broadcast axes. Rank <= 8. Each operand and the output start at an element offset:
// a resident network reads and writes values in place in a larger buffer (Split parts, Concat
// slices).

struct Params {
    count: u32,
    rank: u32,
    a_offset: u32,
    b_offset: u32,
    out_offset: u32,
    from_out: u32,
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
    var offsets = vec2<u32>(params.a_offset, params.b_offset);
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
        out[params.out_offset + i] = Elem(f32(a[o.x]) + f32(b[o.y]));
    }
}

// Add with one operand in the output's own buffer (a shortcut's Add reading a Split part that
// lies beside its slice of one Concat's output): one launch may not bind a buffer both read-only
// and writable, so that operand (`from_out`: 1 for a, 2 for b) is read through `out`, and its
// own binding is a stand-in.
@compute @workgroup_size(256)
fn add_from_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        var sum: f32;
        if params.from_out == 1u {
            sum = f32(out[o.x]) + f32(b[o.y]);
        } else {
            sum = f32(a[o.x]) + f32(out[o.y]);
        }
        out[params.out_offset + i] = Elem(sum);
    }
}

@compute @workgroup_size(256)
fn sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[params.out_offset + i] = Elem(f32(a[o.x]) - f32(b[o.y]));
    }
}

@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[params.out_offset + i] = Elem(f32(a[o.x]) * f32(b[o.y]));
    }
}

@compute @workgroup_size(256)
fn div(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[params.out_offset + i] = Elem(f32(a[o.x]) / f32(b[o.y]));
    }
}

// Integer Div and Mod on exact integers held as tensor values (TopK indices and what follows
// from them; f32 only: the engine refuses them in f16).
// The loader only lets constant, non-zero divisors reach these.

@compute @workgroup_size(256)
fn int_div(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[params.out_offset + i] = Elem(i32(a[o.x]) / i32(b[o.y]));
    }
}

// Mod with fmod = 0: the remainder takes the divisor's sign.
@compute @workgroup_size(256)
fn int_mod(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        let y = i32(b[o.y]);
        var r = i32(a[o.x]) % y;
        if r != 0 && (r < 0) != (y < 0) {
            r += y;
        }
        out[params.out_offset + i] = Elem(r);
    }
}

// Mod with fmod = 1: the remainder takes the dividend's sign.
@compute @workgroup_size(256)
fn int_fmod(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.count {
        let o = operands(i);
        out[params.out_offset + i] = Elem(i32(a[o.x]) % i32(b[o.y]));
    }
}
