//! Attributions that need rows beyond the image itself: Integrated Gradients (one gradient row per
//! point of the path), SmoothGrad (one gradient row per noisy copy) and Occlusion (one forward row
//! per window, in `occlusion.rs`).
//! Each is a [`RowSet`]: it fills its rows on demand, in order, and folds in their outputs as
//! they come back, so memory stays bounded by one engine batch whatever the number of rows.

use ndarray::{Array4, ArrayView1, ArrayView2, ArrayView4, ArrayViewMut4, Axis, Zip};

use super::{
    ExplainError, NamedTensor,
    job::{Objective, SmoothGradVariant},
};
use crate::{engine::GraphKind, noise::Noise};

/// What the engine returned for a run of rows.
pub(super) struct RowOutputs<'a> {
    /// `[rows, classes]`.
    pub(super) logits: ArrayView2<'a, f32>,
    /// The objective's input gradients, `[rows, 3, H, W]`: present for rows of the gradient graph.
    pub(super) gradients: Option<ArrayView4<'a, f32>>,
}

impl<'a> RowOutputs<'a> {
    pub(super) fn gradients(&self) -> Result<ArrayView4<'a, f32>, ExplainError> {
        self.gradients.ok_or_else(|| ExplainError::Internal("gradient rows ran without gradients".into()))
    }
}

/// Rows beyond the image's own run, filled and folded in on demand.
pub(super) trait RowSet: Send {
    /// Number of rows.
    fn len(&self) -> usize;
    /// The graph its rows run through: [`GraphKind::Gradient`] or [`GraphKind::Forward`].
    fn graph(&self) -> GraphKind;
    /// Writes rows `start..start + out.len()` into `out` (`[rows, 3, H, W]`); called in order.
    fn fill(&mut self, start: usize, out: ArrayViewMut4<'_, f32>);
    /// Folds in the outputs of rows `start..start + rows`.
    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError>;
}

/// The rows of one attribution method.
pub(super) trait AttributionRows: RowSet {
    /// The attribution tensors.
    fn finish(self: Box<Self>) -> Vec<NamedTensor>;
}

/// The objective's value for one row of logits: the target logit, or the cross-entropy loss.
pub(super) fn objective_value(logits: ArrayView1<'_, f32>, target: usize, objective: Objective) -> f64 {
    let logit = f64::from(logits[target]);
    match objective {
        Objective::Logit => logit,
        Objective::CrossEntropy => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
            max + sum.ln() - logit
        }
    }
}

/// A method's attribution tensor.
pub(super) fn named(name: String, tensor: Array4<f32>) -> NamedTensor {
    NamedTensor { name, tensor: tensor.into_dyn(), channel_indices: Vec::new() }
}

/// `name/delta`, shape `[1]`: how far an attribution summing to `total` is from the objective's
/// change from the baseline to the input (Captum's convergence delta).
pub(super) fn convergence_delta(name: &str, total: f64, [input, baseline]: [f64; 2]) -> NamedTensor {
    let delta = total - (input - baseline);
    NamedTensor {
        name: format!("{name}/delta"),
        tensor: ndarray::arr1(&[delta as f32]).into_dyn(),
        channel_indices: Vec::new(),
    }
}

/// Integrated Gradients with Captum's `riemann_trapezoid` rule: points α = linspace(0, 1, n),
/// weights 1/n with the two ends halved.
pub(super) struct IntegratedGradients {
    name: String,
    input: Array4<f32>,
    baseline: Array4<f32>,
    steps: usize,
    target: usize,
    objective: Objective,
    sum: Array4<f64>,
    ends: [f64; 2],
}

impl IntegratedGradients {
    /// IG of `input` from `baseline` in `steps` points (≥ 2) for `target`, sent as `name` (and
    /// its convergence delta as `name/delta`).
    pub(super) fn new(
        name: String,
        input: Array4<f32>,
        baseline: Array4<f32>,
        steps: usize,
        target: usize,
        objective: Objective,
    ) -> Self {
        let sum = Array4::zeros(input.raw_dim());
        Self { name, input, baseline, steps, target, objective, sum, ends: [0.0; 2] }
    }

    fn alpha(&self, row: usize) -> f32 {
        row as f32 / (self.steps - 1) as f32
    }

    fn weight(&self, row: usize) -> f64 {
        let weight = 1.0 / self.steps as f64;
        if row == 0 || row == self.steps - 1 { weight / 2.0 } else { weight }
    }
}

impl RowSet for IntegratedGradients {
    fn len(&self) -> usize {
        self.steps
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Gradient
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            let alpha = self.alpha(start + i);
            Zip::from(&mut row)
                .and(self.baseline.index_axis(Axis(0), 0))
                .and(self.input.index_axis(Axis(0), 0))
                .for_each(|r, &b, &x| *r = b + alpha * (x - b));
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        let (gradients, logits) = (outputs.gradients()?, outputs.logits);
        for (i, gradient) in gradients.axis_iter(Axis(0)).enumerate() {
            let row = start + i;
            let weight = self.weight(row);
            Zip::from(self.sum.index_axis_mut(Axis(0), 0)).and(&gradient).for_each(|s, &g| *s += weight * f64::from(g));
            let value = || objective_value(logits.index_axis(Axis(0), i), self.target, self.objective);
            if row == 0 {
                self.ends[0] = value();
            }
            if row == self.steps - 1 {
                self.ends[1] = value();
            }
        }
        Ok(())
    }
}

impl AttributionRows for IntegratedGradients {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let mut attribution = Array4::<f32>::zeros(self.input.raw_dim());
        let mut total = 0.0_f64;
        Zip::from(&mut attribution).and(&self.sum).and(&self.input).and(&self.baseline).for_each(|a, &s, &x, &b| {
            let value = s * f64::from(x - b);
            total += value;
            *a = value as f32;
        });
        let delta = convergence_delta(&self.name, total, [self.ends[1], self.ends[0]]);
        vec![named(self.name, attribution), delta]
    }
}

/// SmoothGrad: gradients of copies of the input with Gaussian noise of σ = level × (max − min).
pub(super) struct SmoothGrad {
    name: String,
    input: Array4<f32>,
    samples: usize,
    sigma: f64,
    noise: Noise,
    variant: SmoothGradVariant,
    sum: Array4<f64>,
    sum_of_squares: Array4<f64>,
}

impl SmoothGrad {
    /// SmoothGrad of `input` over `samples` copies, sent as `name`.
    pub(super) fn new(
        name: String,
        input: Array4<f32>,
        samples: usize,
        noise_level: f32,
        seed: u64,
        variant: SmoothGradVariant,
    ) -> Self {
        let max = input.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = input.iter().copied().fold(f32::INFINITY, f32::min);
        let sigma = f64::from(noise_level) * f64::from(max - min);
        let sum = Array4::zeros(input.raw_dim());
        let sum_of_squares = Array4::zeros(input.raw_dim());
        Self { name, input, samples, sigma, noise: Noise::new(seed), variant, sum, sum_of_squares }
    }
}

impl RowSet for SmoothGrad {
    fn len(&self) -> usize {
        self.samples
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Gradient
    }

    fn fill(&mut self, _start: usize, mut out: ArrayViewMut4<'_, f32>) {
        // Each row draws its own stretch of the stream, so batch boundaries change nothing.
        let sigma = self.sigma as f32;
        let input = self.input.index_axis(Axis(0), 0);
        let mut noise = vec![0.0_f32; input.len()];
        for mut row in out.axis_iter_mut(Axis(0)) {
            self.noise.fill_normal(&mut noise);
            for ((value, &x), &z) in row.iter_mut().zip(input.iter()).zip(&noise) {
                *value = x + sigma * z;
            }
        }
    }

    fn absorb(&mut self, _start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for gradient in outputs.gradients()?.axis_iter(Axis(0)) {
            Zip::from(self.sum.index_axis_mut(Axis(0), 0))
                .and(self.sum_of_squares.index_axis_mut(Axis(0), 0))
                .and(&gradient)
                .for_each(|s, q, &g| {
                    *s += f64::from(g);
                    *q += f64::from(g) * f64::from(g);
                });
        }
        Ok(())
    }
}

impl AttributionRows for SmoothGrad {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let n = self.samples as f64;
        let values = match self.variant {
            SmoothGradVariant::Mean => self.sum.mapv(|s| s / n),
            SmoothGradVariant::Squared => self.sum_of_squares.mapv(|q| q / n),
            SmoothGradVariant::Variance => {
                let mut variance = self.sum_of_squares.mapv(|q| q / n);
                Zip::from(&mut variance).and(&self.sum).for_each(|v, &s| *v = (*v - (s / n).powi(2)).max(0.0));
                variance
            }
        };
        vec![named(self.name, values.mapv(|v| v as f32))]
    }
}
