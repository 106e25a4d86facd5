// Greedy class-aware NMS over the candidates of `decode_boxes.wgsl`, in one workgroup; the same
// definition as `postprocess::decode_and_nms` on the CPU, so both give identical detections:
// 1. sort the candidates' indices by descending score, equal scores by anchor (a bitonic sort
//    over the next power of two, in the scratch part of `out`);
// 2. take the first `max_candidates` in that order, 256 at a time: each invocation checks its
//    candidate against the boxes kept so far and marks which earlier candidates of its block
//    overlap it; invocation 0 then walks the block in order and keeps those that no kept box
//    suppresses, up to `max_detections`.
//
// `out`, in 32-bit words: [0] boxes kept, [1] candidates found, [2..4) 0, then `anchors` slots of
// 8 words (the kept candidates in order, `Candidate`'s layout), then `next_power_of_two(anchors)`
// words of sort scratch. The host reads back only the header and the kept boxes.

// As in `decode_boxes.wgsl`: one uniform buffer for both launches.
struct Params {
    anchors: u32,
    classes: u32,
    input_offset: u32,
    max_detections: u32,
    max_candidates: u32,
    confidence: f32,
    iou: f32,
    iou_plus_one: f32,
}

struct Candidate {
    bbox: vec4<f32>,
    score: f32,
    class_id: u32,
    anchor: u32,
    area: f32,
}

struct Candidates {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    items: array<Candidate>,
}

@group(0) @binding(0) var<storage, read> candidates: Candidates;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

const GROUP: u32 = 256u;
const HEADER: u32 = 4u;
const SLOT: u32 = 8u; // words of one kept box

var<workgroup> shared_count: u32;
var<workgroup> kept_count: u32;
// Per candidate of the current block: not suppressed by a box kept in an earlier block.
var<workgroup> alive: array<u32, GROUP>;
// Per candidate of the current block: bit s set where candidate s < it of the block overlaps it.
var<workgroup> earlier_overlaps: array<array<u32, 8>, GROUP>;

fn scratch(i: u32) -> u32 {
    return HEADER + SLOT * params.anchors + i;
}

// The IEEE-754 total order of `f32::total_cmp`, as unsigned integers.
fn score_key(score: f32) -> u32 {
    let bits = bitcast<u32>(score);
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// Whether candidate `a` comes before `b`: higher score first, then lower anchor. Indices from
// `n` up are the padding up to a power of two, after every candidate.
fn before(a: u32, b: u32, n: u32) -> bool {
    if a >= n || b >= n {
        return a < n || (b >= n && a < b);
    }
    let ka = score_key(candidates.items[a].score);
    let kb = score_key(candidates.items[b].score);
    if ka != kb {
        return ka > kb;
    }
    return candidates.items[a].anchor < candidates.items[b].anchor;
}

// IoU above the threshold, as `postprocess::overlaps` computes it: single correctly rounded
// operations, no product feeding a sum (so no fused multiply-add can round differently).
fn overlaps(a: vec4<f32>, area_a: f32, b: vec4<f32>, area_b: f32) -> bool {
    let iw = max(min(a.z, b.z) - max(a.x, b.x), 0.0);
    let ih = max(min(a.w, b.w) - max(a.y, b.y), 0.0);
    return (iw * ih) * params.iou_plus_one > params.iou * (area_a + area_b);
}

fn kept_box(k: u32) -> vec4<f32> {
    let w = HEADER + SLOT * k;
    return vec4<f32>(bitcast<f32>(out[w]), bitcast<f32>(out[w + 1u]), bitcast<f32>(out[w + 2u]),
        bitcast<f32>(out[w + 3u]));
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        shared_count = candidates.count;
        kept_count = 0u;
    }
    let n = workgroupUniformLoad(&shared_count);

    // 1. Bitonic sort of the indices 0..m, m the next power of two of n.
    var m = 1u;
    while m < n {
        m *= 2u;
    }
    for (var i = lid; i < m; i += GROUP) {
        out[scratch(i)] = i;
    }
    storageBarrier();
    for (var k = 2u; k <= m; k *= 2u) {
        for (var j = k / 2u; j > 0u; j /= 2u) {
            for (var t = lid; t < m / 2u; t += GROUP) {
                let i = ((t & ~(j - 1u)) << 1u) | (t & (j - 1u));
                let l = i | j;
                let a = out[scratch(i)];
                let b = out[scratch(l)];
                // Ascending (in `before` order) where bit k of i is clear, descending elsewhere.
                if before(b, a, n) == ((i & k) == 0u) {
                    out[scratch(i)] = b;
                    out[scratch(l)] = a;
                }
            }
            storageBarrier();
        }
    }

    // 2. Greedy NMS over the best `max_candidates`, a block of 256 at a time.
    let total = min(n, params.max_candidates);
    for (var start = 0u; start < total; start += GROUP) {
        let kept_before = workgroupUniformLoad(&kept_count);
        if kept_before >= params.max_detections {
            break;
        }
        let block = min(total - start, GROUP);
        if lid < block {
            let c = candidates.items[out[scratch(start + lid)]];
            var suppressed = false;
            for (var k = 0u; k < kept_before && !suppressed; k++) {
                let w = HEADER + SLOT * k;
                suppressed = out[w + 5u] == c.class_id
                    && overlaps(kept_box(k), bitcast<f32>(out[w + 7u]), c.bbox, c.area);
            }
            alive[lid] = u32(!suppressed);
            var bits = array<u32, 8>();
            for (var s = 0u; s < lid; s++) {
                let e = candidates.items[out[scratch(start + s)]];
                if e.class_id == c.class_id && overlaps(e.bbox, e.area, c.bbox, c.area) {
                    bits[s / 32u] |= 1u << (s % 32u);
                }
            }
            earlier_overlaps[lid] = bits;
        }
        workgroupBarrier();
        if lid == 0u {
            var kept_here = array<u32, 8>();
            var kept = kept_before;
            for (var t = 0u; t < block && kept < params.max_detections; t++) {
                var hit = alive[t] == 0u;
                for (var w = 0u; w < 8u; w++) {
                    hit = hit || (earlier_overlaps[t][w] & kept_here[w]) != 0u;
                }
                if !hit {
                    kept_here[t / 32u] |= 1u << (t % 32u);
                    let c = candidates.items[out[scratch(start + t)]];
                    let o = HEADER + SLOT * kept;
                    out[o] = bitcast<u32>(c.bbox.x);
                    out[o + 1u] = bitcast<u32>(c.bbox.y);
                    out[o + 2u] = bitcast<u32>(c.bbox.z);
                    out[o + 3u] = bitcast<u32>(c.bbox.w);
                    out[o + 4u] = bitcast<u32>(c.score);
                    out[o + 5u] = c.class_id;
                    out[o + 6u] = c.anchor;
                    out[o + 7u] = bitcast<u32>(c.area);
                    kept++;
                }
            }
            kept_count = kept;
        }
        storageBarrier();
        workgroupBarrier();
    }
    if lid == 0u {
        out[0] = kept_count;
        out[1] = n;
        out[2] = 0u;
        out[3] = 0u;
    }
}
