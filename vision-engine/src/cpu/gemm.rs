use super::for_each_row_chunk;

/// `c[m×n] = a[m×k] · b[k×n]` (+ `c`'s previous values when `accumulate`), row-major.
///
/// The i-k-j loop order streams rows of `b` and `c`, which the compiler vectorises; rows of `c`
/// are spread over the cores.
pub fn gemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    assert_eq!(a.len(), m * k, "gemm: a is not {m}x{k}");
    assert_eq!(b.len(), k * n, "gemm: b is not {k}x{n}");
    assert_eq!(c.len(), m * n, "gemm: c is not {m}x{n}");
    for_each_row_chunk(c, n, |first_row, rows| {
        for (r, c_row) in rows.chunks_mut(n).enumerate() {
            if !accumulate {
                c_row.fill(0.0);
            }
            let a_row = &a[(first_row + r) * k..][..k];
            for (p, &a_ip) in a_row.iter().enumerate() {
                let b_row = &b[p * n..][..n];
                for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                    *c_ij += a_ip * b_pj;
                }
            }
        }
    });
}
