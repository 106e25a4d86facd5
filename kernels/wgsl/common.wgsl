// Prepended to every kernel (see kernels/src/lib.rs).
// One invocation per element. Dispatches wider than 65,535 workgroups spill into y, so the flat
// index is rebuilt from both dimensions.

const WORKGROUP_SIZE: u32 = 256u;

fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// Component `i` of an 8-wide array packed as two vec4s (uniform arrays need 16-byte elements).
fn at8(v: array<vec4<u32>, 2>, i: u32) -> u32 {
    return v[i / 4u][i % 4u];
}

fn at8i(v: array<vec4<i32>, 2>, i: u32) -> i32 {
    return v[i / 4u][i % 4u];
}

fn activate(x: f32, activation: u32) -> f32 {
    switch activation {
        case 1u: { return 1.0 / (1.0 + exp(-x)); }
        case 2u: { return x / (1.0 + exp(-x)); }
        default: { return x; }
    }
}
