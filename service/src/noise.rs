//! Seeded noise for SmoothGrad, noise baselines and randomised weights: SplitMix64 drawn in order; Gaussians by
//! Box–Muller in blocks, its logarithm, sine and cosine computed by short polynomials in plain
//! `f32` arithmetic (errors below 1e-7), which the compiler vectorises and which give the same bits
//! on every platform. The same seed gives the same numbers at any batch size.

use std::f32::consts::{FRAC_PI_2, LN_2, SQRT_2};

/// Gaussian pairs computed per block: large enough to vectorise, small enough for the stack.
const BLOCK_PAIRS: usize = 256;

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub(crate) struct Noise {
    state: u64,
}

impl Noise {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform in [0, 1), 24 bits: exact in `f32`.
    fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1_u32 << 24) as f32)
    }

    /// Fills `out` with standard normals: Box–Muller, each pair of uniforms giving two (the
    /// second of the last pair is dropped when `out` is odd). Radii stop at √(48 ln 2) ≈ 5.8σ,
    /// where 24-bit uniforms end.
    pub(crate) fn fill_normal(&mut self, out: &mut [f32]) {
        let (mut radius, mut turn) = ([0.0_f32; BLOCK_PAIRS], [0.0_f32; BLOCK_PAIRS]);
        for block in out.chunks_mut(2 * BLOCK_PAIRS) {
            let pairs = block.len().div_ceil(2);
            let (radius, turn) = (&mut radius[..pairs], &mut turn[..pairs]);
            for (r, t) in radius.iter_mut().zip(turn.iter_mut()) {
                // In (0, 1], so that its logarithm is finite.
                *r = 1.0 - self.uniform_f32();
                *t = self.uniform_f32();
            }
            for r in radius.iter_mut() {
                *r = (-2.0 * ln(*r)).sqrt();
            }
            for (pair, (&r, &t)) in block.chunks_mut(2).zip(radius.iter().zip(turn.iter())) {
                let (sin, cos) = sin_cos_turns(t);
                pair[0] = r * cos;
                if let Some(second) = pair.get_mut(1) {
                    *second = r * sin;
                }
            }
        }
    }
}

/// ln(x) for finite x > 0: x = m · 2^e with m in [√½, √2), then
/// ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, by its series to s⁹.
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mut mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if mantissa > SQRT_2 {
        mantissa *= 0.5;
        exponent += 1;
    }
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    exponent as f32 * LN_2 + 2.0 * s * series
}

/// (sin, cos) of the angle `turns` × 2π, for `turns` in [0, 1]: the nearest quarter turn q, and
/// the rest a in [−π/4, π/4] by Taylor series (to a⁹ and a¹⁰), rotated by q quarter turns.
fn sin_cos_turns(turns: f32) -> (f32, f32) {
    let quarters = (4.0 * turns).round();
    let a = (4.0 * turns - quarters) * FRAC_PI_2;
    let a2 = a * a;
    let sin = a
        * (1.0 - a2 * (1.0 / 6.0) * (1.0 - a2 * (1.0 / 20.0) * (1.0 - a2 * (1.0 / 42.0) * (1.0 - a2 * (1.0 / 72.0)))));
    let cos = 1.0
        - a2 * 0.5
            * (1.0
                - a2 * (1.0 / 12.0)
                    * (1.0 - a2 * (1.0 / 30.0) * (1.0 - a2 * (1.0 / 56.0) * (1.0 - a2 * (1.0 / 90.0)))));
    // Rotation by q quarter turns without branches, so that the loop calling this vectorises:
    // q = 1 and 3 swap sine and cosine; the sine is negated for q = 2, 3, the cosine for q = 1, 2.
    let q = quarters as i32 & 3;
    let (sin, cos) = if q & 1 == 1 { (cos, sin) } else { (sin, cos) };
    let sin_sign = 1.0 - 2.0 * ((q >> 1) & 1) as f32;
    let cos_sign = 1.0 - 2.0 * (((q + 1) >> 1) & 1) as f32;
    (sin_sign * sin, cos_sign * cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normals(seed: u64, count: usize) -> Vec<f32> {
        let mut values = vec![0.0; count];
        Noise::new(seed).fill_normal(&mut values);
        values
    }

    #[test]
    fn same_seed_same_numbers_and_the_moments_of_a_standard_normal() {
        let (a, b, c) = (normals(7, 200_001), normals(7, 200_001), normals(8, 200_001));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let moment = |k: i32| a.iter().map(|&v| (f64::from(v) - mean).powi(k)).sum::<f64>() / n;
        let (variance, skew, kurtosis) = (moment(2), moment(3), moment(4));
        assert!(mean.abs() < 0.01 && (variance - 1.0).abs() < 0.01, "mean {mean} variance {variance}");
        assert!(skew.abs() < 0.03 && (kurtosis - 3.0).abs() < 0.05, "skew {skew} kurtosis {kurtosis}");
        let within_one = a.iter().filter(|v| v.abs() < 1.0).count() as f64 / n;
        assert!((within_one - 0.6827).abs() < 0.005, "{within_one} within one sigma");
        let mut uniform = Noise::new(1);
        assert!((0..1000).map(|_| uniform.uniform()).all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn a_fill_is_the_start_of_a_longer_one_and_odd_lengths_drop_one_value() {
        let long = normals(3, 1_000);
        assert_eq!(normals(3, 2 * BLOCK_PAIRS + 6), long[..2 * BLOCK_PAIRS + 6]);
        let mut noise = Noise::new(3);
        let (mut first, mut second) = (vec![0.0; 3], vec![0.0; 2]);
        noise.fill_normal(&mut first);
        noise.fill_normal(&mut second);
        assert_eq!(first, long[..3]);
        assert_eq!(second, long[4..6], "the fourth value, the odd fill's dropped half, is skipped");
    }

    #[test]
    fn the_polynomials_match_the_standard_library() {
        for k in 1..=20_000 {
            let x = k as f32 / 20_000.0;
            for x in [x, x * 1e-6] {
                let error = (ln(x) - x.ln()).abs();
                assert!(error <= 2e-7 * x.ln().abs().max(1.0), "ln({x}): {} against {}", ln(x), x.ln());
            }
            let turns = x;
            let (sin, cos) = sin_cos_turns(turns);
            let angle = std::f64::consts::TAU * f64::from(turns);
            assert!((f64::from(sin) - angle.sin()).abs() < 5e-7, "sin at {turns} turns");
            assert!((f64::from(cos) - angle.cos()).abs() < 5e-7, "cos at {turns} turns");
        }
        assert_eq!(sin_cos_turns(0.0), (0.0, 1.0));
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn the_stream_is_the_one_the_reference_scripts_reproduce() {
        // tools/references/seeded.py: Draws(7).uniform(3) and Draws(7).normal(5).
        let mut noise = Noise::new(7);
        let uniforms: Vec<f64> = (0..3).map(|_| noise.uniform()).collect();
        assert_eq!(uniforms, [0.3898297483912715, 0.01678829452815611, 0.9007606806068834]);
        let expected =
            [0.9884742782094533, 0.10465632597758467, -1.8642558608272304, -1.0700427272219295, 0.00392042349997836];
        for (value, expected) in normals(7, 5).into_iter().zip(expected) {
            assert!((f64::from(value) - expected).abs() < 1e-6, "{value} against {expected}");
        }
    }
}
