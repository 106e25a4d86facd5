// conv_gemm.wgsl's implicit-GEMM convolution with its products on the GPU's matrix units (tensor
// cores), through wgpu's cooperative matrices: same Params, patch loads and split-k
// (conv_loads.wgsl). The weights come packed by the plan, in f16, in the order the matrix units
// read them; each tile of patches is rounded to f16 in workgroup memory; 16x16x16 products go
// into f32 sums (the precision of PyTorch's default TF32 convolutions: 10 bits of mantissa per
// factor, f32 sums).
//
// A TILE_M (channels) x TILE_N (pixels) tile per workgroup of 8 subgroups of 32 invocations (the
// engine runs this kernel only where every subgroup has 32), 64x64 or 32x128: subgroup s computes
// the 16 channels 16 (s % SUBGROUPS_M) .. by the 32 pixels 32 (s / SUBGROUPS_M) .., two 16x16
// blocks of sums. The sums leave through workgroup memory, one 16x16 block per subgroup at a
// time, for the bias, the activation and the edges of the image.

const SUBGROUP: u32 = 32u;
const BLOCK: u32 = 16u;
const SUBGROUPS_M: u32 = TILE_M / BLOCK;
const FRAGMENT: u32 = BLOCK * BLOCK;

// The weights in fragments (launch.rs, `weight_fragments`): per group, per tile (grid row), per k
// tile of the tile's range, per block of 16 of its channels, a 16x16 block, row-major (channel,
// k), zeros past the tile's channels and k; `params.tiles.z` k tiles per tile. Each subgroup loads
// its block of the next k tile straight into registers while it multiplies the current one: no
// weight passes through workgroup memory or a barrier, and no load tests the layer's bounds.
@group(0) @binding(1) var<storage, read> weight_fragments: array<f16>;

// Rows of the patch tile are 8 halves (16 bytes) longer than their values: the matrix loads read
// rows of 16 bytes, which then fall in distinct banks of workgroup memory.
const PATCH_ROW: u32 = TILE_N + 8u;

var<workgroup> patch_tile: array<f16, TILE_K * PATCH_ROW>;   // [k][p]
var<workgroup> sums: array<f32, THREADS / SUBGROUP * BLOCK * BLOCK>; // a block per subgroup

// Writes this subgroup's block of sums (in `sums` from `first`) to channels m .. and pixels p ..
// of the output, after bias and activation, or, split, as partial sums; lane `lane` writes
// column lane % 16 of every other row.
fn store_block(first: u32, lane: u32, m: u32, m_end: u32, oc: u32, row: u32, p: u32, pixels: u32) {
    let column = lane % BLOCK;
    let q = p + column;
    for (var r = lane / BLOCK; r < BLOCK; r += SUBGROUP / BLOCK) {
        if m + r < m_end && q < pixels {
            var v = sums[first + r * BLOCK + column];
            if params.has_bias != 0u && !SPLIT_K {
                v += f32(bias[oc + r]);
            }
            put(row + r * pixels + q, activate(v, select(params.activation, 0u, SPLIT_K)));
        }
    }
}

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let work = start(wg, lid);
    let pixels = params.output.z * params.output.w;
    // Where this invocation's patch values go in the tile.
    let p_slot = (lid / TILE_N) * PATCH_ROW + lid % TILE_N;

    let block_m = BLOCK * (subgroup % SUBGROUPS_M);
    let block_p = 2u * BLOCK * (subgroup / SUBGROUPS_M);
    var acc0 = coop_mat16x16<f32, C>();
    var acc1 = coop_mat16x16<f32, C>();

    // This subgroup's weights at its first k tile.
    let tile = work.g * params.tiles.w + wg.y;
    var a_at = ((tile * params.tiles.z + (work.k_begin - work.k_first) / TILE_K) * SUBGROUPS_M
        + subgroup % SUBGROUPS_M) * FRAGMENT;
    var a = coopLoadT<coop_mat16x16<f16, A>>(&weight_fragments[a_at], BLOCK);
    var patches = first_patches(work.k_begin);
    for (var k0 = work.k_begin; k0 < work.k_end; k0 += TILE_K) {
        patch_tile[p_slot] = f16(patches.rows.x);
        patch_tile[p_slot + PATCH_ROW_STEP * PATCH_ROW] = f16(patches.rows.y);
        patch_tile[p_slot + 2u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.rows.z);
        patch_tile[p_slot + 3u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.rows.w);
        if PATCH_LOADS == 8u {
            patch_tile[p_slot + 4u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.more_rows.x);
            patch_tile[p_slot + 5u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.more_rows.y);
            patch_tile[p_slot + 6u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.more_rows.z);
            patch_tile[p_slot + 7u * PATCH_ROW_STEP * PATCH_ROW] = f16(patches.more_rows.w);
        }
        workgroupBarrier();
        patches = next_patches(k0 + TILE_K);
        // The next k tile's weights (past the last, the plan's block of zeros or the next tile's).
        a_at += SUBGROUPS_M * FRAGMENT;
        let a_next = coopLoadT<coop_mat16x16<f16, A>>(&weight_fragments[a_at], BLOCK);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&patch_tile[block_p], PATCH_ROW);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&patch_tile[block_p + BLOCK], PATCH_ROW);
        acc0 = coopMultiplyAdd(a, b0, acc0);
        acc1 = coopMultiplyAdd(a, b1, acc1);
        a = a_next;
        workgroupBarrier();
    }

    let m = work.m0 + block_m;
    let oc = work.g * params.kernel.w + m;
    let row = select(params.out_offset, work.slice * params.count, SPLIT_K)
        + (work.n * params.output.y + oc) * pixels;
    let first = subgroup * BLOCK * BLOCK;
    coopStoreT(acc0, &sums[first], BLOCK);
    workgroupBarrier();
    store_block(first, lane, m, work.m_end, oc, row, work.p0 + block_p, pixels);
    workgroupBarrier();
    coopStoreT(acc1, &sums[first], BLOCK);
    workgroupBarrier();
    store_block(first, lane, m, work.m_end, oc, row, work.p0 + block_p + BLOCK, pixels);
}
