//! GradientSHAP as Captum 0.9's `GradientShap` computes it: per draw, the input with Gaussian
//! noise x̃, a baseline b from the caller's distribution and α uniform in [0, 1); one gradient row at
//! b + α(x̃ − b), and (x̃ − b) ⊙ its gradient averaged over the draws.

use std::collections::VecDeque;

use ndarray::{Array3, Array4, ArrayViewMut4, Axis, Zip};

use super::{
    ExplainError, NamedTensor,
    rows::{AttributionRows, RowOutputs, RowSet, named},
};
use crate::{engine::GraphKind, noise::Noise};

/// The rows of one GradientSHAP attribution.
pub(super) struct GradientShap {
    name: String,
    /// The input, `[3, H, W]`.
    input: Array3<f32>,
    /// The baseline distribution, each `[3, H, W]`.
    baselines: Vec<Array3<f32>>,
    samples: usize,
    stdev: f32,
    draws: Noise,
    /// x̃ − b of the rows filled and not yet absorbed, in order.
    pending: VecDeque<Array3<f32>>,
    sum: Array3<f64>,
}

impl GradientShap {
    /// GradientSHAP of `input` (`[1, 3, H, W]`) over `samples` draws from `baselines` (each
    /// `[1, 3, H, W]`, at least one) with noise of σ = `stdev`, seeded; sent as `name`.
    pub(super) fn new(
        name: String,
        input: Array4<f32>,
        baselines: Vec<Array4<f32>>,
        samples: usize,
        stdev: f32,
        seed: u64,
    ) -> Self {
        let first = |image: Array4<f32>| image.index_axis_move(Axis(0), 0);
        let input = first(input);
        let sum = Array3::zeros(input.raw_dim());
        let baselines = baselines.into_iter().map(first).collect();
        Self { name, input, baselines, samples, stdev, draws: Noise::new(seed), pending: VecDeque::new(), sum }
    }
}

impl RowSet for GradientShap {
    fn len(&self) -> usize {
        self.samples
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Gradient
    }

    fn fill(&mut self, _start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for mut row in out.axis_iter_mut(Axis(0)) {
            let index = ((self.draws.uniform() * self.baselines.len() as f64) as usize).min(self.baselines.len() - 1);
            let alpha = self.draws.uniform() as f32;
            let mut noisy = self.input.clone();
            if self.stdev > 0.0 {
                let mut noise = vec![0.0_f32; noisy.len()];
                self.draws.fill_normal(&mut noise);
                for (value, z) in noisy.iter_mut().zip(noise) {
                    *value += self.stdev * z;
                }
            }
            let baseline = &self.baselines[index];
            Zip::from(&mut row).and(&noisy).and(baseline).for_each(|r, &x, &b| *r = alpha * x + (1.0 - alpha) * b);
            noisy -= baseline;
            self.pending.push_back(noisy);
        }
    }

    fn absorb(&mut self, _start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for gradient in outputs.gradients()?.axis_iter(Axis(0)) {
            let difference = self
                .pending
                .pop_front()
                .ok_or_else(|| ExplainError::Internal("a GradientSHAP row came back unfilled".into()))?;
            Zip::from(&mut self.sum).and(&difference).and(&gradient).for_each(|s, &d, &g| *s += f64::from(d * g));
        }
        Ok(())
    }
}

impl AttributionRows for GradientShap {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let samples = self.samples as f64;
        let mean = self.sum.mapv(|s| (s / samples) as f32).insert_axis(Axis(0));
        vec![named(self.name, mean)]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, s};

    use super::*;

    /// Runs `shap` through a model whose objective is Σ wᵢxᵢ (gradient `w` everywhere).
    fn through_linear(mut shap: GradientShap, weights: &Array4<f32>, batch: usize) -> Array4<f32> {
        let mut start = 0;
        while start < shap.len() {
            let rows = batch.min(shap.len() - start);
            let mut images = Array4::zeros((rows, 3, 2, 2));
            shap.fill(start, images.view_mut());
            let gradients = weights.broadcast((rows, 3, 2, 2)).unwrap().to_owned();
            let logits = Array2::zeros((rows, 1));
            let outputs = RowOutputs { logits: logits.slice(s![.., ..]), gradients: Some(gradients.view()) };
            shap.absorb(start, outputs).unwrap();
            start += rows;
        }
        let tensor = Box::new(shap).finish().remove(0).tensor;
        tensor.into_dimensionality().unwrap()
    }

    #[test]
    fn on_a_linear_model_it_is_the_weights_times_the_mean_difference_from_the_baselines() {
        let input = Array4::from_shape_fn((1, 3, 2, 2), |(_, c, y, x)| (c * 4 + y * 2 + x) as f32);
        let weights = Array4::from_shape_fn((1, 3, 2, 2), |(_, c, y, x)| 1.0 + (c + y + x) as f32 / 10.0);
        let baselines = vec![Array4::zeros((1, 3, 2, 2)), Array4::from_elem((1, 3, 2, 2), 2.0_f32)];
        // Without noise, the mean of x − b over the draws is x − (the mean drawn baseline).
        let shap = GradientShap::new("g".into(), input.clone(), baselines.clone(), 400, 0.0, 7);
        let attribution = through_linear(shap, &weights, 64);
        let mut draws = Noise::new(7);
        let twos = (0..400)
            .filter(|_| {
                let second = draws.uniform() >= 0.5;
                draws.uniform();
                second
            })
            .count();
        assert!((100..300).contains(&twos), "both baselines are drawn: {twos} of 400");
        let mean_baseline = 2.0 * twos as f32 / 400.0;
        let expected = (&input - mean_baseline) * &weights;
        assert!(attribution.iter().zip(&expected).all(|(a, e)| (a - e).abs() < 1e-4), "{attribution:?}");
        // The same draws whatever the engine's batch size; noise changes them.
        let again = GradientShap::new("g".into(), input.clone(), baselines.clone(), 400, 0.0, 7);
        assert_eq!(through_linear(again, &weights, 7), attribution);
        let noisy = GradientShap::new("g".into(), input, baselines, 400, 0.5, 7);
        assert_ne!(through_linear(noisy, &weights, 64), attribution);
    }
}
