// Decoding of a `[1, 4 + classes, anchors]` detector output (boxes as cx, cy, w, h): per anchor
// the best class (the first on ties), kept where its score is above the confidence threshold,
// appended to the candidate list through an atomic counter (the order of appends varies; `nms`
// sorts them). Term by term as `postprocess::decode_and_nms` on the CPU.

// Shared with `nms.wgsl` (one uniform buffer for both launches, rewritten per frame).
struct Params {
    anchors: u32,
    classes: u32,
    input_offset: u32, // where the output starts in its buffer, in elements
    max_detections: u32, // at most `anchors`
    max_candidates: u32, // at most `anchors`
    confidence: f32,
    iou: f32,
    iou_plus_one: f32, // 1 + iou, rounded once on the host as the CPU reference rounds it
}

// 32 bytes; `nms.wgsl` reads the same layout.
struct Candidate {
    bbox: vec4<f32>, // x1, y1, x2, y2
    score: f32,
    class_id: u32,
    anchor: u32,
    area: f32, // (x2 - x1) * (y2 - y1), sides clamped at 0: rounded once, here
}

struct Candidates {
    count: atomic<u32>, // cleared before each frame
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    items: array<Candidate>, // room for every anchor
}

@group(0) @binding(0) var<storage, read> output: array<Elem>;
@group(0) @binding(1) var<storage, read_write> candidates: Candidates;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let anchor = flat_index(gid, groups);
    if anchor >= params.anchors {
        return;
    }
    let row = params.anchors;
    let base = params.input_offset + anchor;
    // The CPU starts from -infinity, which WGSL cannot write as a constant: until a score is
    // taken, any score but NaN and -infinity (>= the lowest finite f32) beats it.
    var best = 0.0;
    var class_id = 0u;
    var taken = false;
    for (var c = 0u; c < params.classes; c++) {
        let score = f32(output[base + (4u + c) * row]);
        if select(score >= -0x1.fffffep+127f, score > best, taken) {
            best = score;
            class_id = c;
            taken = true;
        }
    }
    if !taken || !(best > params.confidence) {
        return;
    }
    let cx = f32(output[base]);
    let cy = f32(output[base + row]);
    // w * 0.5 is exact, so a fused multiply-add rounds these as the CPU does.
    let hw = f32(output[base + 2u * row]) * 0.5;
    let hh = f32(output[base + 3u * row]) * 0.5;
    let bbox = vec4<f32>(cx - hw, cy - hh, cx + hw, cy + hh);
    let area = max(bbox.z - bbox.x, 0.0) * max(bbox.w - bbox.y, 0.0);
    let slot = atomicAdd(&candidates.count, 1u);
    candidates.items[slot] = Candidate(bbox, best, class_id, anchor, area);
}
