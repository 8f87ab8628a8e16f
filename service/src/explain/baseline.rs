//! Integrated Gradients baselines, in the model's normalised input space.

use ndarray::{Array4, Axis};

use super::job::Baseline;
use crate::noise::Noise;
use crate::preprocess::Preprocessing;

/// σ of the blurred baseline when the request leaves it at 0.
pub const DEFAULT_BLUR_SIGMA: f32 = 5.0;

/// The baseline tensor for `input` (`[1, 3, H, W]`).
pub(super) fn baseline(kind: &Baseline, input: &Array4<f32>, preprocessing: &Preprocessing) -> Array4<f32> {
    let normalised = |channel: usize, pixel: f32| (pixel - preprocessing.mean[channel]) / preprocessing.std[channel];
    match kind {
        Baseline::Zeros => Array4::zeros(input.raw_dim()),
        Baseline::Black => Array4::from_shape_fn(input.raw_dim(), |(_, c, _, _)| normalised(c, 0.0)),
        Baseline::Blurred(sigma) => blur(input, *sigma),
        Baseline::UniformNoise(seed) => {
            let mut noise = Noise::new(*seed);
            let mut baseline = Array4::zeros(input.raw_dim());
            for ((_, c, _, _), value) in baseline.indexed_iter_mut() {
                *value = normalised(c, noise.uniform() as f32);
            }
            baseline
        }
        Baseline::Tensor(tensor) => tensor.clone(),
    }
}

/// Separable Gaussian blur of each channel, radius ⌈3σ⌉, edges clamped.
fn blur(input: &Array4<f32>, sigma: f32) -> Array4<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f32> = (-radius..=radius).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let along = |image: &Array4<f32>, axis: usize| {
        let length = image.len_of(Axis(axis)) as isize;
        Array4::from_shape_fn(image.raw_dim(), |(n, c, y, x)| {
            let centre = if axis == 2 { y } else { x } as isize;
            weights
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    let at = (centre + k as isize - radius).clamp(0, length - 1) as usize;
                    w * if axis == 2 { image[[n, c, at, x]] } else { image[[n, c, y, at]] }
                })
                .sum()
        })
    };
    along(&along(input, 2), 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preprocessing() -> Preprocessing {
        Preprocessing { height: 8, width: 8, resize_size: 8, mean: [0.5, 0.25, 0.0], std: [0.5, 0.25, 1.0] }
    }

    #[test]
    fn black_is_pixel_zero_normalised() {
        let input = Array4::ones((1, 3, 8, 8));
        let black = baseline(&Baseline::Black, &input, &preprocessing());
        assert_eq!((black[[0, 0, 3, 3]], black[[0, 1, 0, 0]], black[[0, 2, 7, 7]]), (-1.0, -1.0, 0.0));
    }

    #[test]
    fn blur_keeps_constants_and_smooths_edges() {
        let constant = Array4::from_elem((1, 3, 8, 8), 0.7_f32);
        let blurred = baseline(&Baseline::Blurred(2.0), &constant, &preprocessing());
        assert!(blurred.iter().all(|v| (v - 0.7).abs() < 1e-5));
        let step = Array4::from_shape_fn((1, 1, 8, 8), |(_, _, _, x)| if x < 4 { 0.0 } else { 1.0 });
        let blurred = blur(&step, 1.0);
        assert!(blurred[[0, 0, 0, 3]] > 0.1 && blurred[[0, 0, 0, 4]] < 0.9);
    }

    #[test]
    fn uniform_noise_is_seeded_and_within_the_pixel_range() {
        let input = Array4::zeros((1, 3, 8, 8));
        let a = baseline(&Baseline::UniformNoise(3), &input, &preprocessing());
        assert_eq!(a, baseline(&Baseline::UniformNoise(3), &input, &preprocessing()));
        assert_ne!(a, baseline(&Baseline::UniformNoise(4), &input, &preprocessing()));
        assert!(a.index_axis(Axis(1), 0).iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
