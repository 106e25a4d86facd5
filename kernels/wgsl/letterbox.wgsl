// RGBA8 pixels (one u32 each) -> NCHW network input, letterboxed like Ultralytics: bilinear
// sampling at pixel centres (OpenCV INTER_LINEAR), grey 114 bands, values / 255. The same
// computation as `letterbox::to_input` in vision-engine, term by term.

struct Params {
    count: u32, // input width * input height
    src_width: u32,
    src_height: u32,
    dst_width: u32,
    dst_height: u32,
    resized_width: u32,
    resized_height: u32,
    pad_left: u32,
    pad_top: u32,
    same_size: u32, // 1: the image is the resized size, copy it exactly
    _pad0: u32,
    _pad1: u32,
    scale: f32, // source pixels to input pixels
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<storage, read> pixels: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<Elem>;
@group(0) @binding(2) var<uniform> params: Params;

struct Tap {
    i0: u32,
    i1: u32,
    weight: f32,
}

// The two source pixels around destination pixel `dst` and the weight of the second.
fn tap(dst: u32, len: u32) -> Tap {
    let src = max((f32(dst) + 0.5) / params.scale - 0.5, 0.0);
    let i0 = min(u32(floor(src)), len - 1u);
    return Tap(i0, min(i0 + 1u, len - 1u), min(src - f32(i0), 1.0));
}

fn channel(pixel: u32, c: u32) -> f32 {
    return f32((pixel >> (8u * c)) & 0xffu);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.count {
        return;
    }
    let plane = params.count;
    let x = i % params.dst_width;
    let y = i / params.dst_width;
    let inside = x >= params.pad_left && x < params.pad_left + params.resized_width
        && y >= params.pad_top && y < params.pad_top + params.resized_height;
    if !inside {
        let grey = 114.0 / 255.0;
        out[i] = Elem(grey);
        out[plane + i] = Elem(grey);
        out[2u * plane + i] = Elem(grey);
        return;
    }
    let rx = x - params.pad_left;
    let ry = y - params.pad_top;
    var tx = Tap(rx, rx, 0.0);
    var ty = Tap(ry, ry, 0.0);
    if params.same_size == 0u {
        tx = tap(rx, params.src_width);
        ty = tap(ry, params.src_height);
    }
    let w = params.src_width;
    let p00 = pixels[ty.i0 * w + tx.i0];
    let p01 = pixels[ty.i0 * w + tx.i1];
    let p10 = pixels[ty.i1 * w + tx.i0];
    let p11 = pixels[ty.i1 * w + tx.i1];
    for (var c = 0u; c < 3u; c++) {
        let top = channel(p00, c) * (1.0 - tx.weight) + channel(p01, c) * tx.weight;
        let bottom = channel(p10, c) * (1.0 - tx.weight) + channel(p11, c) * tx.weight;
        out[c * plane + i] = Elem((top * (1.0 - ty.weight) + bottom * ty.weight) / 255.0);
    }
}
