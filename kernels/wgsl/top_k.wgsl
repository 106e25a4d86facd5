// TopK indices by rank: one invocation per input value counts the values of its row that come
// before it (better, or equal at a lower index, as ONNX Runtime orders ties) and, when fewer
// than k do, writes its own index (an exact integer as f32) at that rank. Ranks are distinct, so
// every output slot is written once. The count stops at k: most values of a long row stop early.
// The values follow from these indices by a gather_elements launch.

struct Params {
    count: u32,   // outer * len * inner input values
    len: u32,     // size of the TopK axis
    k: u32,
    inner: u32,   // product of the axes after it
    largest: u32, // 1: largest first, 0: smallest first
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
    let r = i % params.inner;
    let a = (i / params.inner) % params.len;
    let o = i / (params.inner * params.len);
    let first = o * params.len * params.inner + r;
    let x = f32(input[i]);
    var rank = 0u;
    for (var j = 0u; j < params.len && rank < params.k; j++) {
        let y = f32(input[first + j * params.inner]);
        let better = select((y < x), (y > x), params.largest == 1u);
        if better || (y == x && j < a) {
            rank++;
        }
    }
    if rank < params.k {
        out[(o * params.k + rank) * params.inner + r] = Elem(a);
    }
}
