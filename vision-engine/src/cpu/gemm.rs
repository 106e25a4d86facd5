//! A cache-blocked, register-tiled f32 GEMM that LLVM vectorises without intrinsics.
//!
//! `A` (the weights) is packed into panels of `MR` rows, k-major; `B` is packed, block by block
//! (`KC` × `NC`), into panels of `NR` columns by a [`PanelSource`], which lets a convolution
//! unfold its receptive fields straight into the panels (implicit GEMM, no im2col matrix). The
//! micro-kernel keeps an `MR` × `NR` tile of `C` in fixed-size arrays, i.e. in vector registers.
//! Threads split `C`'s columns, so each packs only the `B` it reads.

use std::ops::Range;

use super::activate_in_place;
use super::threads::Disjoint;
use crate::Activation;

/// Depth of one packed block: an `MR` × `KC` panel of A stays in L1.
const KC: usize = 256;
/// Columns of one packed block: a `KC` × `NC` block of B stays in L2.
pub(super) const NC: usize = 256;
/// Below this many multiply-adds, starting a thread costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 1 << 18;

/// Fills packed `B` panels: rows `rows` and columns `columns` of a `K` × `N` matrix, as
/// consecutive `NR`-column panels of `rows.len()` × `NR` values, zero past the last column.
pub(crate) trait PanelSource: Sync {
    fn pack<const NR: usize>(&self, rows: Range<usize>, columns: Range<usize>, dst: &mut [f32]);
}

/// A row-major `K` × `N` matrix.
pub(crate) struct Dense<'a> {
    pub b: &'a [f32],
    pub n: usize,
}

impl PanelSource for Dense<'_> {
    #[inline(always)] // Into the GEMM's loops, to share their vector width.
    fn pack<const NR: usize>(&self, rows: Range<usize>, columns: Range<usize>, dst: &mut [f32]) {
        let kc = rows.len();
        for (panel, first) in columns.clone().step_by(NR).enumerate() {
            let width = NR.min(columns.end - first);
            let out = &mut dst[panel * kc * NR..][..kc * NR];
            for (p, out_row) in rows.clone().zip(out.as_chunks_mut::<NR>().0) {
                copy_row::<NR>(
                    &mut out_row[..width],
                    &self.b[p * self.n + first..][..width],
                );
                out_row[width..].fill(0.0);
            }
        }
    }
}

/// The AVX2 micro-kernel's rows: 4 × 16 tiles, 8 accumulators, enough to cover Zen 1's FMA
/// latency. 6 × 16 tiles computed 18 and 36 rows for the detector's 16- and 32-channel layers
/// and 66 and 132 for its 64- and 128-channel ones, and the detector ran 5-8% slower on them
/// (BENCHMARKS.md).
#[cfg(target_arch = "x86_64")]
const AVX2_MR: usize = 4;

/// The portable micro-kernel's tile: rows of A, columns of B (`NR` divides `NC`).
const PORTABLE_MR: usize = 2;
const PORTABLE_NR: usize = 16;

/// How the output tile starts before the products are added.
#[derive(Clone, Copy)]
pub(crate) enum Init<'a> {
    Zero,
    /// One value per row of `C` (a convolution's bias per output channel).
    RowBias(&'a [f32]),
    /// `C`'s previous values.
    Existing,
}

/// `c[m×n] = a[m×k] · b[k×n]` (+ `c`'s previous values when `accumulate`), row-major.
pub fn gemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    assert_eq!(b.len(), k * n, "gemm: b is not {k}x{n}");
    assert_eq!(c.len(), m * n, "gemm: c is not {m}x{n}");
    let init = if accumulate {
        Init::Existing
    } else {
        Init::Zero
    };
    gemm_packed(&PackedA::new(m, k, a), n, &Dense { b, n }, c, init, None);
}

/// The micro-kernels, by the vector registers they need.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// 12 × 32 tiles (24 of the 32 zmm registers), an explicit micro-kernel: LLVM's own
    /// vectorisation of the generic one at this width used gathers.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// [`AVX2_MR`] × 16 tiles (8 of 16 ymm registers), vectorised by LLVM.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 2 × 16 tiles of 128-bit vectors (SSE2, wasm simd128): 8 accumulators, 4 vectors of B
    /// and one broadcast of A, 13 of 16 registers (V8 keeps one xmm as scratch). Without FMA a
    /// multiply-add needs a temporary too, and taller tiles (4 × 8 before, 5 × 8, 6 × 8, 3 × 16,
    /// 4 × 16) were 0-25% slower than this one in V8 (BENCHMARKS.md).
    Portable,
}

impl Kernel {
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }
}

/// An `m` × `k` matrix packed into the `A` panels of the micro-kernel it was packed for, so
/// that a model's weights are packed once at load rather than on every product.
#[derive(Debug, Clone)]
pub(crate) struct PackedA {
    kernel: Kernel,
    m: usize,
    k: usize,
    panels: Vec<f32>,
}

impl PackedA {
    /// Packs `a` for this CPU's best micro-kernel.
    pub(crate) fn new(m: usize, k: usize, a: &[f32]) -> Self {
        Self::for_kernel(Kernel::best(), m, k, a)
    }

    /// Packs `a` for `kernel`, which must be [`Kernel::best`] or one it implies.
    fn for_kernel(kernel: Kernel, m: usize, k: usize, a: &[f32]) -> Self {
        assert_eq!(a.len(), m * k, "gemm: a is not {m}x{k}");
        let panels = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => pack_a::<12>(m, k, a),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => pack_a::<AVX2_MR>(m, k, a),
            Kernel::Portable => pack_a::<PORTABLE_MR>(m, k, a),
        };
        Self {
            kernel,
            m,
            k,
            panels,
        }
    }
}

/// `c = activation(init + a · B)` where `source` supplies `B` (`k` × `n`) panel by panel; the
/// activation runs on each finished tile while it is still in registers and cache.
pub(crate) fn gemm_packed(
    a: &PackedA,
    n: usize,
    source: &impl PanelSource,
    c: &mut [f32],
    init: Init,
    activation: Option<Activation>,
) {
    let &PackedA { m, k, .. } = a;
    if m == 0 || n == 0 {
        return;
    }
    let job = Job::new([m, n, k], &a.panels, source, c, init, activation);
    match a.kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (`Kernel::best`).
        Kernel::Avx512 => {
            split_columns::<32>(&job, |columns| unsafe { columns_avx512(&job, columns) })
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (`Kernel::best`).
        Kernel::Avx2 => split_columns::<16>(&job, |columns| unsafe { columns_avx2(&job, columns) }),
        Kernel::Portable => split_columns::<PORTABLE_NR>(&job, |columns| {
            run_columns::<PORTABLE_MR, PORTABLE_NR, _>(
                &job,
                columns,
                micro_kernel::<PORTABLE_MR, PORTABLE_NR, false>,
            )
        }),
    }
}

/// Packs `a` (`m` × `k`) into panels of `MR` rows, each k-major (`MR` values per k), rows past
/// `m` zero.
fn pack_a<const MR: usize>(m: usize, k: usize, a: &[f32]) -> Vec<f32> {
    let mut packed = vec![0.0; m.div_ceil(MR) * MR * k];
    // Written in order and read from MR rows at once: scattered writes were the slow side.
    for (rows, panel) in a.chunks(MR * k).zip(packed.chunks_exact_mut(MR * k)) {
        for (p, column) in panel.as_chunks_mut::<MR>().0.iter_mut().enumerate() {
            for (value, row) in column.iter_mut().zip(rows.chunks_exact(k)) {
                *value = row[p];
            }
        }
    }
    packed
}

struct Job<'a, S> {
    m: usize,
    n: usize,
    k: usize,
    a: &'a [f32],
    source: &'a S,
    /// `C`, whose column ranges (`split_columns`) threads write at once.
    c: Disjoint,
    init: Init<'a>,
    activation: Option<Activation>,
}

impl<'a, S> Job<'a, S> {
    fn new(
        [m, n, k]: [usize; 3],
        a: &'a [f32],
        source: &'a S,
        c: &'a mut [f32],
        init: Init<'a>,
        activation: Option<Activation>,
    ) -> Self {
        assert_eq!(c.len(), m * n, "gemm: c is not {m}x{n}");
        Self {
            m,
            n,
            k,
            a,
            source,
            c: Disjoint(c.as_mut_ptr()),
            init,
            activation,
        }
    }
}

/// Runs `work` on ranges of whole `NR`-column panels, one per thread.
fn split_columns<const NR: usize>(job: &Job<impl PanelSource>, work: impl Fn(Range<usize>) + Sync) {
    let panels = job.n.div_ceil(NR);
    let by_work = (job.m * job.n * job.k / MIN_WORK_PER_THREAD).max(1);
    let threads = super::threads::worker_count().min(panels).min(by_work);
    if threads <= 1 {
        work(0..job.n);
        return;
    }
    let per_thread = panels.div_ceil(threads) * NR;
    super::threads::run_tasks(job.n.div_ceil(per_thread), &|index| {
        let first = index * per_thread;
        work(first..(first + per_thread).min(job.n));
    });
}

/// The blocked loops compiled with AVX2 and FMA (thread entry points do not inherit features).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn columns_avx2(job: &Job<impl PanelSource>, columns: Range<usize>) {
    // A closure, which inherits this function's features: passed as a function item, the
    // micro-kernel was sometimes compiled apart without FMA, each `mul_add` a call to `fmaf`
    // (76% of a run, 8x slower).
    run_columns::<AVX2_MR, 16, _>(job, columns, |a, b, acc| {
        micro_kernel::<AVX2_MR, 16, true>(a, b, acc)
    });
}

/// The blocked loops compiled with AVX-512, around the explicit micro-kernel.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn columns_avx512(job: &Job<impl PanelSource>, columns: Range<usize>) {
    run_columns::<12, 32, _>(job, columns, |a, b, acc| {
        // SAFETY: this function's caller guarantees AVX-512F.
        unsafe { micro_kernel_avx512(a, b, acc) }
    });
}

/// Computes columns `columns` of `C`: blocks of `NC` columns × `KC` depth; within a block, each
/// `MR`-row panel of A sweeps all `NR`-column panels of the packed B.
#[inline(always)]
fn run_columns<const MR: usize, const NR: usize, S: PanelSource>(
    job: &Job<S>,
    columns: Range<usize>,
    micro_kernel: impl Fn(&[f32], &[f32], &mut [[f32; NR]; MR]),
) {
    let &Job { m, n, k, a, .. } = job;
    let mut packed_b = vec![0.0; KC.min(k) * NC.min(columns.len().next_multiple_of(NR))];
    for first_column in columns.clone().step_by(NC) {
        let block_columns = first_column..(first_column + NC).min(columns.end);
        let nc = block_columns.len();
        for first_row in (0..k).step_by(KC) {
            let kc = KC.min(k - first_row);
            job.source.pack::<NR>(
                first_row..first_row + kc,
                block_columns.clone(),
                &mut packed_b,
            );
            let first_block = first_row == 0;
            let last_block = first_row + kc == k;
            for row_panel in 0..m.div_ceil(MR) {
                let a_panel = &a[row_panel * MR * k + first_row * MR..][..kc * MR];
                let rows = MR.min(m - row_panel * MR);
                for column_panel in 0..nc.div_ceil(NR) {
                    let b_panel = &packed_b[column_panel * kc * NR..][..kc * NR];
                    let width = NR.min(nc - column_panel * NR);
                    let offset = row_panel * MR * n + first_column + column_panel * NR;
                    // SAFETY: rows `row_panel·MR ..+ rows`, columns of this thread's range.
                    let tile = |i: usize| unsafe {
                        std::slice::from_raw_parts_mut(job.c.at(offset + i * n), width)
                    };
                    let mut acc = [[0.0f32; NR]; MR];
                    for (i, acc_row) in acc.iter_mut().enumerate().take(rows) {
                        match (first_block, job.init) {
                            (true, Init::Zero) => {}
                            (true, Init::RowBias(bias)) => {
                                *acc_row = [bias[row_panel * MR + i]; NR];
                            }
                            _ => copy_row::<NR>(&mut acc_row[..width], tile(i)),
                        }
                    }
                    micro_kernel(a_panel, b_panel, &mut acc);
                    for (i, acc_row) in acc.iter_mut().enumerate().take(rows) {
                        // On the whole fixed-size row while it is in registers: on the stored
                        // run-time-length row, read back, it took about 6% of a one-thread run.
                        if let (true, Some(activation)) = (last_block, job.activation) {
                            activate_in_place(activation, acc_row);
                        }
                        copy_row::<NR>(tile(i), &acc_row[..width]);
                    }
                }
            }
        }
    }
}

/// `dst = src` for rows of at most `NR` values: a whole row as one fixed-size move. A
/// `copy_from_slice` of a run-time length calls `memcpy`, which cost more than the
/// multiply-adds of tiles with a short depth (5% of a one-thread inference, BENCHMARKS.md).
#[inline(always)]
fn copy_row<const NR: usize>(dst: &mut [f32], src: &[f32]) {
    if let (Ok(dst), Ok(src)) = (
        <&mut [f32; NR]>::try_from(&mut *dst),
        <&[f32; NR]>::try_from(src),
    ) {
        *dst = *src;
    } else {
        dst.copy_from_slice(src);
    }
}

/// `acc += a_panel · b_panel` over the panels' depth: one broadcast of A per row and one
/// `NR`-wide row of B per step, all in registers.
#[inline(always)]
fn micro_kernel<const MR: usize, const NR: usize, const FMA: bool>(
    a_panel: &[f32],
    b_panel: &[f32],
    acc: &mut [[f32; NR]; MR],
) {
    let mut tile = *acc;
    for (a_column, b_row) in a_panel
        .as_chunks::<MR>()
        .0
        .iter()
        .zip(b_panel.as_chunks::<NR>().0)
    {
        for (tile_row, &a_value) in tile.iter_mut().zip(a_column) {
            for (t, &b_value) in tile_row.iter_mut().zip(b_row) {
                *t = if FMA {
                    a_value.mul_add(b_value, *t)
                } else {
                    *t + a_value * b_value
                };
            }
        }
    }
    *acc = tile;
}

/// [`micro_kernel`] for 12 × 32 tiles in AVX-512 registers: per step of depth, two loads of B
/// and 24 fused multiply-adds with broadcasts of A.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn micro_kernel_avx512(a_panel: &[f32], b_panel: &[f32], acc: &mut [[f32; 32]; 12]) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    let depth = b_panel.len() / 32;
    assert!(a_panel.len() == depth * 12 && b_panel.len() == depth * 32);
    // SAFETY: every load and store below stays inside `acc`, `a_panel` and `b_panel` (asserted
    // lengths: `depth` steps of 12 values of A and 32 of B).
    unsafe {
        let mut tile: [[__m512; 2]; 12] = std::array::from_fn(|i| {
            [
                _mm512_loadu_ps(acc[i].as_ptr()),
                _mm512_loadu_ps(acc[i].as_ptr().add(16)),
            ]
        });
        let (a, b) = (a_panel.as_ptr(), b_panel.as_ptr());
        for p in 0..depth {
            let (b_low, b_high) = (
                _mm512_loadu_ps(b.add(p * 32)),
                _mm512_loadu_ps(b.add(p * 32 + 16)),
            );
            for (i, row) in tile.iter_mut().enumerate() {
                let a_value = _mm512_set1_ps(*a.add(p * 12 + i));
                row[0] = _mm512_fmadd_ps(a_value, b_low, row[0]);
                row[1] = _mm512_fmadd_ps(a_value, b_high, row[1]);
            }
        }
        for (row, out) in tile.iter().zip(acc.iter_mut()) {
            _mm512_storeu_ps(out.as_mut_ptr(), row[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(16), row[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Dense, Init, Kernel, PackedA, gemm_packed};

    /// Sizes that leave partial row and column tiles, span several `KC` and `NC` blocks and
    /// split over threads.
    const SHAPES: [[usize; 3]; 4] = [[1, 1, 1], [7, 19, 5], [13, 600, 300], [70, 530, 520]];

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn check(kernel: &str, run: impl Fn([usize; 3], &[f32], &Dense, &mut [f32], Init)) {
        super::super::set_worker_threads(2);
        for [m, n, k] in SHAPES {
            let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(m, 3));
            let mut c = vec![f32::NAN; m * n];
            run(
                [m, n, k],
                &a,
                &Dense { b: &b, n },
                &mut c,
                Init::RowBias(&bias),
            );
            for i in 0..m {
                for j in 0..n {
                    let expected = f64::from(bias[i])
                        + (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                            .sum::<f64>();
                    let got = f64::from(c[i * n + j]);
                    assert!(
                        (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                        "{kernel} {m}x{n}x{k} at ({i}, {j}): {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_kernel_this_cpu_has_matches_the_definition() {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                kernels.push(Kernel::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                kernels.push(Kernel::Avx512);
            }
        }
        for kernel in kernels {
            check(&format!("{kernel:?}"), |[m, n, k], a, b, c, init| {
                gemm_packed(&PackedA::for_kernel(kernel, m, k, a), n, b, c, init, None)
            });
        }
    }
}
