//! Sigmoid and SiLU over slices, written branch-free so they vectorise: `exp` as a Cephes-style
//! polynomial (within 2 ulp of `f32::exp`) instead of one libm call per value.

use crate::Activation;

/// [`Activation::apply`] on every value. Inlined so that the GEMM's epilogue runs it with the
/// GEMM's vector width, its constants kept in registers across tiles.
#[inline(always)]
pub fn activate_in_place(kind: Activation, values: &mut [f32]) {
    match kind {
        Activation::Sigmoid => values.iter_mut().for_each(|x| *x = 1.0 / (1.0 + exp(-*x))),
        Activation::Silu => values.iter_mut().for_each(|x| *x /= 1.0 + exp(-*x)),
    }
}

/// `e^x`: `2^n · e^r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`, e^r by polynomial.
/// `e^-87.3` (about 1.2e-38) below -87.3 and +inf above 88.3 (where `e^x` nears `f32::MAX`); NaN
/// stays NaN. Sigmoid and SiLU add it to one, which absorbs anything below 2^-25 exactly as it
/// would 0, and Softmax divides it by a sum of at least one: so the low end needs no case of its
/// own, only the clamp, which compiles to one `pmax` (the case cost a compare and two selects).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(-87.3, 88.3);
    // Adding 1.5·2^23 rounds to the nearest integer n and leaves n in the low mantissa bits,
    // so both n and 2^n come out of integer arithmetic that vectorises everywhere (`round` and
    // `as i32` do not: a libm call without SSE4.1, and a saturating scalar conversion).
    const ROUND: f32 = 12_582_912.0;
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let poly = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = poly * r * r + r + 1.0;
    let two_n = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(ROUND.to_bits())
            .wrapping_add(127)
            << 23,
    );
    let value = e_r * two_n;
    if x > 88.3 {
        f32::INFINITY
    } else {
        // NaN fails the comparison and the clamp keeps it, so it comes through here.
        value
    }
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn exp_matches_libm_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.3 {
            let (ours, libm) = (f64::from(exp(x)), f64::from(x).exp());
            worst = worst.max((ours - libm).abs() / libm);
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(1.0 + exp(-100.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }
}
