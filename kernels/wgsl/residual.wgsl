// Part of the kernels whose output may take a residual (a shortcut's Add fused into a
// convolution: graph::Op::Conv's `residual`); the including kernel declares `residual`, `out` and
// `params.residual`.

// What is added to output value i (counted from the output's start) after the activation:
// `params.residual.x` 0 adds nothing, 1 reads binding `residual` from element `params.residual.y`,
// 2 reads `out` from there (a residual in the output's own buffer, which one launch may not also
// bind read-only: a C2f block's part, in the Concat's output beside the slice being written).
fn residual_at(i: u32) -> f32 {
    switch params.residual.x {
        case 1u: { return f32(residual[params.residual.y + i]); }
        case 2u: { return f32(out[params.residual.y + i]); }
        default: { return 0.0; }
    }
}
