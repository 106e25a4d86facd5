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

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

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
