// Copies a strided view of `src` into a strided view of `dst`. Transpose, Slice, Concat and Split
// are all this kernel with different offsets and strides, computed on the host from the same
// plans the CPU reference uses. Rank <= 8.

struct Params {
    count: u32,
    rank: u32,
    src_offset: i32,
    dst_offset: u32,
    shape: array<vec4<u32>, 2>,
    src_strides: array<vec4<i32>, 2>,
    dst_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<Elem>;
@group(0) @binding(1) var<storage, read_write> dst: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    var rest = i;
    var s = params.src_offset;
    var d = params.dst_offset;
    for (var axis = params.rank; axis > 0u; axis--) {
        let a = axis - 1u;
        let dim = at8(params.shape, a);
        let index = rest % dim;
        rest = rest / dim;
        s += i32(index) * at8i(params.src_strides, a);
        d += index * at8(params.dst_strides, a);
    }
    dst[d] = src[u32(s)];
}
