//! Seeded noise for SmoothGrad and noise baselines: SplitMix64 drawn in order, Box–Muller for
//! Gaussians. The same seed gives the same numbers on every platform and at any batch size.

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub(super) struct Noise {
    state: u64,
    /// The second Gaussian of the last Box–Muller pair, not yet handed out.
    spare: Option<f64>,
}

impl Noise {
    /// A generator seeded with `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub(super) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Standard normal (Box–Muller: each pair of uniforms gives two).
    pub(super) fn normal(&mut self) -> f64 {
        if let Some(spare) = self.spare.take() {
            return spare;
        }
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * self.uniform()).sin_cos();
        self.spare = Some(radius * sin);
        radius * cos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_sane_moments() {
        let draw = |seed| {
            let mut noise = Noise::new(seed);
            (0..20_000).map(|_| noise.normal()).collect::<Vec<_>>()
        };
        let (a, b, c) = (draw(7), draw(7), draw(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let variance = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03 && (variance - 1.0).abs() < 0.05, "mean {mean} variance {variance}");
        let mut uniform = Noise::new(1);
        assert!((0..1000).map(|_| uniform.uniform()).all(|u| (0.0..1.0).contains(&u)));
    }
}
