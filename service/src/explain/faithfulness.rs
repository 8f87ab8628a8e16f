//! How faithful a returned attribution map is, scored with the answer by the code of `explain
//! eval` (explain-fidelity): its pixels, most relevant first, deleted from the image (set to
//! black) or inserted into a blurred copy, in equal steps, one forward row per point of each curve;
//! the target's probability along each curve, and the areas under them.

use std::sync::Arc;

use explain_fidelity::{self as fidelity, Perturbation};
use ndarray::{Array3, ArrayD, ArrayViewMut4, Axis, Ix4};

use super::{
    ExplainError,
    methods::upsample_bilinear,
    prediction,
    rows::{RowOutputs, RowSet},
};
use crate::engine::GraphKind;

/// One attribution's faithfulness.
#[derive(Clone, Debug, PartialEq)]
pub struct Faithfulness {
    /// The attribution's tensor name.
    pub attribution: String,
    /// The target's probability as the most relevant pixels are deleted: `steps + 1` points.
    pub deletion_curve: Vec<f64>,
    /// The target's probability as they are inserted into the blurred copy.
    pub insertion_curve: Vec<f64>,
}

impl Faithfulness {
    /// Area under the deletion curve (lower is more faithful).
    pub fn deletion_auc(&self) -> f64 {
        fidelity::area_under_curve(&self.deletion_curve)
    }

    /// Area under the insertion curve (higher is more faithful).
    pub fn insertion_auc(&self) -> f64 {
        fidelity::area_under_curve(&self.insertion_curve)
    }

    /// The probability on the image minus with its most relevant quarter deleted (linear between
    /// the curve's points).
    pub fn deletion_drop_at_quarter(&self) -> f64 {
        let curve = &self.deletion_curve;
        let Some(&first) = curve.first() else { return 0.0 };
        let position = 0.25 * (curve.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, (position.ceil() as usize).min(curve.len() - 1));
        let fraction = position - low as f64;
        first - ((1.0 - fraction) * curve[low] + fraction * curve[high])
    }
}

/// The images both curves of every map of a request start from or end at, `[3, H, W]`.
#[derive(Clone, Debug)]
pub(super) struct CurveEnds {
    /// The image itself.
    pub(super) image: Array3<f32>,
    /// The black image deletion ends at.
    pub(super) black: Array3<f32>,
    /// The blurred copy insertion starts from.
    pub(super) blurred: Array3<f32>,
}

/// The rows that score one attribution map: `steps + 1` deletion points, then as many insertion
/// points.
pub(super) struct FaithfulnessRows {
    attribution: String,
    ends: Arc<CurveEnds>,
    /// Pixels, most relevant first.
    order: Vec<usize>,
    /// Pixels changed at each point.
    counts: Vec<usize>,
    target: usize,
    probabilities: Vec<f64>,
}

impl FaithfulnessRows {
    /// The rows scoring `tensor` (`[1, C, H, W]`, or a class activation map `[1, 1, h, w]`, upsampled
    /// first) for class `target` in curves of `steps` steps between `ends`.
    pub(super) fn new(
        attribution: &str,
        tensor: &ArrayD<f32>,
        ends: Arc<CurveEnds>,
        target: usize,
        steps: usize,
    ) -> Result<Self, ExplainError> {
        let (_, height, width) = ends.image.dim();
        let problem = |e: String| ExplainError::Internal(format!("scoring the faithfulness of {attribution}: {e}"));
        let map = tensor.view().into_dimensionality::<Ix4>().map_err(|e| problem(e.to_string()))?;
        let upsampled = match map.dim() {
            (1, 1, h, w) if (h, w) != (height, width) => Some(upsample_bilinear(&map.to_owned(), height, width)),
            _ => None,
        };
        let map = upsampled.as_ref().map_or(map, |upsampled| upsampled.view());
        let relevance = fidelity::pixel_relevance(map.into_dyn(), height, width).map_err(|e| problem(e.to_string()))?;
        let order = fidelity::by_relevance(relevance.view());
        let counts = fidelity::step_counts(order.len(), steps);
        let probabilities = vec![0.0; 2 * counts.len()];
        Ok(Self { attribution: attribution.to_owned(), ends, order, counts, target, probabilities })
    }

    /// The curves, once every row has been absorbed.
    pub(super) fn scores(self) -> Faithfulness {
        let insertion_curve = self.probabilities[self.counts.len()..].to_vec();
        let mut deletion_curve = self.probabilities;
        deletion_curve.truncate(self.counts.len());
        Faithfulness { attribution: self.attribution, deletion_curve, insertion_curve }
    }
}

impl RowSet for FaithfulnessRows {
    fn len(&self) -> usize {
        2 * self.counts.len()
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Forward
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        let points = self.counts.len();
        let CurveEnds { image, black, blurred } = &*self.ends;
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            let row_index = start + i;
            let (kind, removed, point) = if row_index < points {
                (Perturbation::Deletion, black, row_index)
            } else {
                (Perturbation::Insertion, blurred, row_index - points)
            };
            // The shapes were checked when the order was made; NaN would show any mistake.
            match fidelity::curve_image(kind, image.view(), removed.view(), &self.order, self.counts[point]) {
                Ok(picture) => row.assign(&picture),
                Err(_) => row.fill(f32::NAN),
            }
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            self.probabilities[start + i] = prediction::probability(logits, self.target);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, Array4, IxDyn, array, s};

    use super::*;

    #[test]
    fn the_drop_at_a_quarter_reads_between_points() {
        let scores = |deletion: Vec<f64>| Faithfulness {
            attribution: "a".into(),
            deletion_curve: deletion,
            insertion_curve: vec![0.0, 1.0],
        };
        assert!((scores(vec![1.0, 0.6, 0.2, 0.1, 0.0]).deletion_drop_at_quarter() - 0.4).abs() < 1e-12);
        // 2 steps: a quarter is half-way between points 0 (0.8) and 1 (0.4): 0.6.
        assert!((scores(vec![0.8, 0.4, 0.0]).deletion_drop_at_quarter() - 0.2).abs() < 1e-12);
        assert!((scores(vec![1.0, 0.6]).insertion_auc() - 0.5).abs() < 1e-12);
        assert!((scores(vec![1.0, 0.6]).deletion_auc() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn rows_delete_then_insert_the_most_relevant_pixels_first() {
        let image = Array3::from_elem((3, 1, 2), 1.0_f32);
        let ends =
            Arc::new(CurveEnds { image, black: Array3::zeros((3, 1, 2)), blurred: Array3::from_elem((3, 1, 2), 0.5) });
        // The right pixel is the more relevant (a map at a layer's smaller size is upsampled first).
        let tensor = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![0.1, 0.9]).unwrap();
        let mut rows = FaithfulnessRows::new("m", &tensor, ends, 0, 2).unwrap();
        assert_eq!(rows.len(), 6);
        let mut out = Array4::zeros((6, 3, 1, 2));
        rows.fill(0, out.view_mut());
        let firsts: Array2<f32> = out.slice(s![.., 0, 0, ..]).to_owned();
        // Deletion: 0, 1, 2 pixels black; insertion: 0, 1, 2 pixels back into the blurred copy.
        assert_eq!(firsts, array![[1.0_f32, 1.0], [1.0, 0.0], [0.0, 0.0], [0.5, 0.5], [0.5, 1.0], [1.0, 1.0]]);
        let logits = Array2::from_shape_fn((6, 2), |(row, class)| if class == 0 { row as f32 } else { 0.0 });
        rows.absorb(0, RowOutputs { logits: logits.view(), gradients: None }).unwrap();
        let scores = rows.scores();
        assert_eq!(scores.deletion_curve.len(), 3);
        assert!((scores.deletion_curve[0] - 0.5).abs() < 1e-12, "softmax of [0, 0]: {scores:?}");
        assert!((scores.insertion_curve[2] - 1.0 / (1.0 + (-5.0_f64).exp())).abs() < 1e-9, "{scores:?}");
    }
}
