// GatherElements: output element i (of the indices' shape) reads data at its own coordinates,
// except along `axis`, where it takes indices[i] (an exact integer held as f32; negative counts
// from the end). An index outside the axis gives NaN: a GPU cannot stop with an error, and NaN
// cannot pass for a value.

struct Params {
    count: u32,
    rank: u32,
    axis: u32,
    len: u32,      // size of data's axis
    nan_bits: u32, // a quiet NaN's bits: WGSL refuses NaN in constant expressions
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    shape: array<vec4<u32>, 2>,        // the indices' (and output's) shape
    data_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> data: array<Elem>;
@group(0) @binding(1) var<storage, read> indices: array<Elem>;
@group(0) @binding(2) var<storage, read_write> out: array<Elem>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    var index = f32(indices[i]);
    if index < 0.0 {
        index += f32(params.len);
    }
    if !(index >= 0.0 && index < f32(params.len)) || fract(index) != 0.0 {
        out[i] = Elem(bitcast<f32>(params.nan_bits));
        return;
    }
    var rest = i;
    var offset = 0u;
    for (var axis = params.rank; axis > 0u; axis--) {
        let ax = axis - 1u;
        let dim = at8(params.shape, ax);
        let coordinate = select(rest % dim, u32(index), ax == params.axis);
        rest = rest / dim;
        offset += coordinate * at8(params.data_strides, ax);
    }
    out[i] = data[offset];
}
