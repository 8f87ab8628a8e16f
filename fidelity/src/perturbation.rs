//! Deletion and insertion curves (Petsiuk et al. 2018, "RISE"): change the image's pixels in the
//! order a map ranks them, score the model after each step, and take the area under the curve of
//! the target class's probability. A faithful map makes deletion fall fast (low area) and insertion
//! rise fast (high area); a random order of the same pixels is the baseline to beat.

use std::cmp::Ordering;

use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use crate::FidelityError;

/// Which way a curve goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perturbation {
    /// Start from the image; replace its pixels, most relevant first, by the removed image's
    /// (black, in Petsiuk et al.).
    Deletion,
    /// Start from the removed image (a blurred copy, in Petsiuk et al.); put the image's pixels
    /// back, most relevant first.
    Insertion,
}

/// Pixel indices (row-major), most relevant first; equal values keep row-major order.
pub fn by_relevance(relevance: ArrayView2<'_, f32>) -> Vec<usize> {
    let values: Vec<f32> = relevance.iter().copied().collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(Ordering::Equal));
    order
}

/// A random order of `pixels` pixel indices, the same for the same seed on every platform
/// (ChaCha8): the baseline a map's order must beat.
pub fn random_order(pixels: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pixels).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// How many pixels have changed at each of a curve's `steps + 1` points: 0, then `k · pixels /
/// steps` rounded, up to all of them.
pub fn step_counts(pixels: usize, steps: usize) -> Vec<usize> {
    let steps = steps.max(1);
    (0..=steps).map(|k| (k * pixels + steps / 2) / steps).collect()
}

/// The images of one curve, `[C, H, W]` each, at the pixel counts of [`step_counts`]: the first is
/// the starting image, the last the other one. `order` ranks the `H × W` pixels (every channel of
/// a pixel changes together).
pub fn curve_images(
    kind: Perturbation,
    image: ArrayView3<'_, f32>,
    removed: ArrayView3<'_, f32>,
    order: &[usize],
    steps: usize,
) -> Result<Vec<Array3<f32>>, FidelityError> {
    step_counts(order.len(), steps)
        .into_iter()
        .map(|changed| curve_image(kind, image, removed, order, changed))
        .collect()
}

/// One image of a curve: the starting image with its first `changed` pixels of `order` (at most
/// all of them) taken from the other one. [`curve_images`] gives a whole curve; this, one point at a
/// time, without holding the others.
pub fn curve_image(
    kind: Perturbation,
    image: ArrayView3<'_, f32>,
    removed: ArrayView3<'_, f32>,
    order: &[usize],
    changed: usize,
) -> Result<Array3<f32>, FidelityError> {
    let (_, height, width) = image.dim();
    if image.dim() != removed.dim() {
        let (_, h, w) = removed.dim();
        return Err(FidelityError::Mismatch { map: (height, width), mask: (h, w) });
    }
    if order.len() != height * width || order.iter().any(|&pixel| pixel >= height * width) {
        return Err(FidelityError::Mismatch { map: (height, width), mask: (order.len(), 1) });
    }
    let (from, to) = match kind {
        Perturbation::Deletion => (image, removed),
        Perturbation::Insertion => (removed, image),
    };
    let mut current = from.to_owned();
    for &pixel in &order[..changed.min(order.len())] {
        let (y, x) = (pixel / width, pixel % width);
        for channel in 0..current.len_of(Axis(0)) {
            current[[channel, y, x]] = to[[channel, y, x]];
        }
    }
    Ok(current)
}

/// The area under a curve sampled at equally spaced fractions from 0 to 1 (trapezoid rule).
pub fn area_under_curve(scores: &[f64]) -> f64 {
    match scores.len() {
        0 => 0.0,
        1 => scores[0],
        n => scores.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0).sum::<f64>() / (n - 1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array3, array};

    use super::*;

    #[test]
    fn pixels_are_ranked_most_relevant_first_ties_in_reading_order() {
        assert_eq!(by_relevance(array![[0.5, 2.0], [0.5, 1.0]].view()), vec![1, 3, 0, 2]);
    }

    #[test]
    fn random_orders_are_permutations_fixed_by_their_seed() {
        let order = random_order(100, 7);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(order, random_order(100, 7));
        assert_ne!(order, random_order(100, 8));
    }

    #[test]
    fn steps_run_from_none_to_all() {
        assert_eq!(step_counts(10, 4), vec![0, 3, 5, 8, 10]);
        assert_eq!(step_counts(3, 0), vec![0, 3]);
    }

    #[test]
    fn deletion_replaces_the_top_ranked_pixels_in_every_channel() {
        let image = Array3::from_elem((2, 2, 2), 1.0f32);
        let removed = Array3::zeros((2, 2, 2));
        let images = curve_images(Perturbation::Deletion, image.view(), removed.view(), &[3, 0, 1, 2], 2).unwrap();
        assert_eq!(images.len(), 3);
        assert_eq!(images[0], image);
        assert_eq!(images[1].index_axis(Axis(0), 1), array![[0.0, 1.0], [1.0, 0.0]]);
        assert_eq!(images[2], removed);
    }

    #[test]
    fn insertion_starts_from_the_removed_image() {
        let image = Array3::from_elem((1, 1, 2), 1.0f32);
        let removed = Array3::zeros((1, 1, 2));
        let images = curve_images(Perturbation::Insertion, image.view(), removed.view(), &[1, 0], 2).unwrap();
        assert_eq!(images[0], removed);
        assert_eq!(images[1], array![[[0.0, 1.0]]]);
        assert_eq!(images[2], image);
    }

    #[test]
    fn an_order_of_other_pixels_is_refused() {
        let image = Array3::<f32>::zeros((1, 2, 2));
        assert!(curve_images(Perturbation::Deletion, image.view(), image.view(), &[0, 1, 2], 2).is_err());
        assert!(curve_images(Perturbation::Deletion, image.view(), image.view(), &[0, 1, 2, 4], 2).is_err());
    }

    #[test]
    fn the_area_is_the_trapezoid_rule_over_unit_spacing() {
        assert!((area_under_curve(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
        assert!((area_under_curve(&[1.0, 0.0, 0.0, 0.0, 0.0]) - 0.125).abs() < 1e-12);
    }
}
