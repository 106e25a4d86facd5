// Nearest-neighbour Resize through per-axis index maps built on the host by the same function
// the CPU reference uses, so both pick the same pixels. Rank <= 8. Input and output start at an
// element offset: a resident network reads and writes Concat slices in place.

struct Params {
    count: u32,
    rank: u32,
    in_offset: u32,
    out_offset: u32,
    shape: array<vec4<u32>, 2>,       // output shape
    in_strides: array<vec4<u32>, 2>,
    map_offsets: array<vec4<u32>, 2>, // where each axis's map starts in `maps`
}

@group(0) @binding(0) var<storage, read> input: array<Elem>;
@group(0) @binding(1) var<storage, read> maps: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<Elem>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    var rest = i;
    var s = params.in_offset;
    for (var axis = params.rank; axis > 0u; axis--) {
        let a = axis - 1u;
        let dim = at8(params.shape, a);
        let index = rest % dim;
        rest = rest / dim;
        s += maps[at8(params.map_offsets, a) + index] * at8(params.in_strides, a);
    }
    out[params.out_offset + i] = input[s];
}
