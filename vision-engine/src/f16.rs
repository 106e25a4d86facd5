//! IEEE 754 binary16 conversions: widening for fp16 ONNX weights, both ways for the GPU's f16
//! tensors.

/// Widens an IEEE 754 binary16 bit pattern to `f32`. Exact for every input: zeros and
/// subnormals, infinities, and NaNs with their sign and payload (a quiet NaN stays quiet).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from(bits >> 10) & 0x1f;
    let mantissa = u32::from(bits & 0x03ff);
    let magnitude = match exponent {
        // Zero or subnormal: mantissa × 2^-24, which f32 holds exactly as a normal number.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        0x1f => 0x7f80_0000 | mantissa << 13,
        // Rebias the exponent from 15 to 127.
        _ => (exponent + 112) << 23 | mantissa << 13,
    };
    f32::from_bits(sign | magnitude)
}

/// Narrows `value` to the nearest binary16 bit pattern, ties to even, as GPUs convert: values
/// beyond the largest finite (65504) round to infinity, NaNs become the quiet NaN with their
/// sign. Written without branches on the value, so loops over slices vectorise.
pub fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = (bits >> 16) as u16 & 0x8000;
    let magnitude = bits & 0x7fff_ffff;
    // At or above 65520 (half an ulp past 65504) everything is infinity or NaN.
    let special = if magnitude > 0x7f80_0000 {
        0x7e00
    } else {
        0x7c00
    };
    // Below 2^-14 the result is subnormal: adding 0.5 lines the 10 mantissa bits up at the
    // bottom of an f32 whose addition rounds to nearest even, and the integer difference is
    // the subnormal's bits.
    let denorm_magic = f32::from_bits(((127 - 15) + (23 - 10) + 1) << 23);
    let subnormal = (f32::from_bits(magnitude) + denorm_magic)
        .to_bits()
        .wrapping_sub(denorm_magic.to_bits()) as u16;
    // Normal: rebias the exponent and round the 13 dropped bits to nearest even.
    let odd = (magnitude >> 13) & 1;
    let normal = (magnitude
        .wrapping_add(((15u32).wrapping_sub(127) << 23).wrapping_add(0xfff))
        .wrapping_add(odd)
        >> 13) as u16;
    let narrowed = if magnitude >= 0x4780_0000 {
        special
    } else if magnitude < 0x3880_0000 {
        subnormal
    } else {
        normal
    };
    sign | narrowed
}

#[cfg(test)]
mod tests {
    use super::{f16_to_f32, f32_to_f16};

    #[test]
    fn narrowing_returns_every_finite_pattern_and_rounds_midpoints_to_even() {
        for bits in 0..=u16::MAX {
            let value = f16_to_f32(bits);
            if value.is_nan() {
                assert_eq!(f32_to_f16(value) & 0x7fff, 0x7e00, "{bits:#06x}");
                continue;
            }
            assert_eq!(f32_to_f16(value), bits, "{bits:#06x}");
            // Between this value and the next one in magnitude: the midpoint goes to the even
            // pattern of the two, the f32 just inside it either way to the nearer one.
            let next = bits.wrapping_add(1);
            if bits & 0x7fff >= 0x7bff {
                continue; // the largest finite and infinity are checked below
            }
            let (low, high) = (f64::from(value), f64::from(f16_to_f32(next)));
            let mid = (low + high) / 2.0;
            let even = if bits & 1 == 0 { bits } else { next };
            assert_eq!(f32_to_f16(mid as f32), even, "midpoint above {bits:#06x}");
            let below = f32::from_bits((mid as f32).to_bits() - 1);
            let above = f32::from_bits((mid as f32).to_bits() + 1);
            assert_eq!(
                f32_to_f16(below),
                bits,
                "just below the midpoint above {bits:#06x}"
            );
            assert_eq!(
                f32_to_f16(above),
                next,
                "just above the midpoint above {bits:#06x}"
            );
        }
        assert_eq!(f32_to_f16(65519.996), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(-1e9), 0xfc00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(1e-9), 0x0000);
        assert_eq!(f32_to_f16(-1e-9), 0x8000);
        assert_eq!(f32_to_f16(-f32::NAN), 0xfe00);
    }

    #[test]
    fn known_bit_patterns() {
        for (bits, want) in [
            (0x0000, 0.0f32),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),        // largest finite
            (0x0400, 6.103_515_6e-5), // smallest normal, 2^-14
            (0x03ff, 6.097_555e-5),   // largest subnormal, 1023 × 2^-24
            (0x0001, 5.960_464_5e-8), // smallest subnormal, 2^-24
            (0x8001, -5.960_464_5e-8),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ] {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        // NaNs keep sign, quiet bit and payload.
        assert_eq!(f16_to_f32(0x7e00).to_bits(), 0x7fc0_0000);
        assert_eq!(f16_to_f32(0xfe00).to_bits(), 0xffc0_0000);
        assert_eq!(f16_to_f32(0x7c01).to_bits(), 0x7f80_2000);
        assert!(f16_to_f32(0x7c01).is_nan());
    }

    /// Every pattern against the definition, evaluated independently in f64.
    #[test]
    fn all_65536_patterns_match_the_definition() {
        for bits in 0..=u16::MAX {
            let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
            let exponent = i32::from((bits >> 10) & 0x1f);
            let fraction = f64::from(bits & 0x03ff) / 1024.0;
            let want = match exponent {
                0 => sign * fraction * 2f64.powi(-14),
                31 if fraction == 0.0 => sign * f64::INFINITY,
                31 => f64::NAN,
                e => sign * (1.0 + fraction) * 2f64.powi(e - 15),
            };
            let got = f16_to_f32(bits);
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(f64::from(got).to_bits(), want.to_bits(), "{bits:#06x}");
            }
        }
    }
}
