//! DeepLift (rescale rule, Captum's `DeepLift`): the input and its reference run as one pair of
//! rows of the DeepLift graph, which gives the input row DeepLift's multipliers in place of its
//! gradient; the attribution is (x − reference) times them.

use ndarray::{Array4, ArrayViewMut4, Axis, Zip};

use super::{
    ExplainError, NamedTensor,
    rows::{AttributionRows, RowOutputs, RowSet, convergence_delta, named},
};
use crate::engine::GraphKind;

/// The pair of rows of one DeepLift attribution.
pub(super) struct DeepLift {
    name: String,
    /// The input and the reference, each `[1, 3, H, W]`.
    rows: [Array4<f32>; 2],
    target: usize,
    /// The input row's multipliers, once run.
    multipliers: Option<Array4<f32>>,
    /// The target's logit for the input and the reference.
    logits: [f64; 2],
}

impl DeepLift {
    /// DeepLift of `input` from `reference` (both `[1, 3, H, W]`) for `target`, sent as `name`
    /// (and its convergence delta as `name/delta`).
    pub(super) fn new(name: String, input: Array4<f32>, reference: Array4<f32>, target: usize) -> Self {
        Self { name, rows: [input, reference], target, multipliers: None, logits: [0.0; 2] }
    }
}

impl RowSet for DeepLift {
    fn len(&self) -> usize {
        2
    }

    fn graph(&self) -> GraphKind {
        GraphKind::DeepLift
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            row.assign(&self.rows[start + i].index_axis(Axis(0), 0));
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        let gradients = outputs.gradients()?;
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            let row = start + i;
            self.logits[row] = f64::from(logits[self.target]);
            if row == 0 {
                self.multipliers = Some(gradients.slice_axis(Axis(0), (i..i + 1).into()).to_owned());
            }
        }
        Ok(())
    }
}

impl AttributionRows for DeepLift {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let [input, reference] = &self.rows;
        let multipliers = self.multipliers.unwrap_or_else(|| Array4::zeros(input.raw_dim()));
        let mut attribution = Array4::<f32>::zeros(input.raw_dim());
        let mut total = 0.0_f64;
        Zip::from(&mut attribution).and(&multipliers).and(input).and(reference).for_each(|a, &m, &x, &r| {
            *a = (x - r) * m;
            total += f64::from(*a);
        });
        let delta = convergence_delta(&self.name, total, self.logits);
        vec![named(self.name, attribution), delta]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, s};

    use super::*;

    #[test]
    fn the_attribution_is_the_difference_from_the_reference_times_the_input_rows_multipliers() {
        let input = Array4::from_shape_fn((1, 3, 2, 2), |(_, c, y, x)| (c * 4 + y * 2 + x) as f32);
        let reference = Array4::from_elem((1, 3, 2, 2), 1.0_f32);
        let mut deep_lift = DeepLift::new("d".into(), input.clone(), reference.clone(), 1);
        // Run one row at a time, as a batch boundary between the two would.
        let mut images = Array4::zeros((2, 3, 2, 2));
        deep_lift.fill(0, images.slice_mut(s![0..1, .., .., ..]));
        deep_lift.fill(1, images.slice_mut(s![1..2, .., .., ..]));
        assert_eq!(images.slice(s![0..1, .., .., ..]), input);
        assert_eq!(images.slice(s![1..2, .., .., ..]), reference);
        let multipliers = Array4::from_shape_fn((2, 3, 2, 2), |(row, c, _, _)| if row == 0 { c as f32 } else { 99.0 });
        let logits = Array2::from_shape_vec((2, 2), vec![0.0, 30.0, 0.0, 4.0]).unwrap();
        for row in 0..2 {
            let outputs = RowOutputs {
                logits: logits.slice(s![row..row + 1, ..]),
                gradients: Some(multipliers.slice(s![row..row + 1, .., .., ..])),
            };
            deep_lift.absorb(row, outputs).unwrap();
        }
        let mut tensors = Box::new(deep_lift).finish();
        let expected = (&input - &reference) * multipliers.slice(s![0..1, .., .., ..]);
        assert_eq!(tensors[0].tensor, expected.into_dyn());
        // Σ attribution = 0 · (0+1+2+3 − 4) + 1 · (4+5+6+7 − 4) + 2 · (8+9+10+11 − 4) = 86; the logits
        // differ by 26.
        assert_eq!(tensors.pop().map(|delta| delta.tensor.into_raw_vec_and_offset().0), Some(vec![60.0]));
    }
}
