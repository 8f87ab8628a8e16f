//! Ablation-CAM as pytorch-grad-cam 1.5 computes it: one row per channel of a layer's activation,
//! that channel ablated, run through the layer's tail graph; a channel's weight is the target
//! logit's relative drop, (s − s_k) / s, and the map is ReLU(Σ_k weight_k · A_k).

use ndarray::{Array1, Array3, Array4, ArrayViewMut4, Axis};

use super::{
    ExplainError, NamedTensor, methods,
    rows::{AttributionRows, RowOutputs, RowSet, named},
};
use crate::engine::GraphKind;

/// What pytorch-grad-cam's `AblationLayer` subtracts from the activation's minimum to ablate a
/// channel of an activation without a zero minimum.
const ABLATION_OFFSET: f32 = 1e7;

/// The rows of one Ablation-CAM attribution.
pub(super) struct AblationCam {
    name: String,
    layer: usize,
    /// The layer's activation, `[C, h, w]`.
    activation: Array3<f32>,
    /// What an ablated channel's values become.
    ablated: f32,
    /// Upsampled to this `(H, W)`, if at all.
    upsample: Option<(usize, usize)>,
    target: usize,
    /// The target logit of the intact activation.
    intact: f64,
    /// The target logit of each channel's row.
    scores: Array1<f64>,
}

impl AblationCam {
    /// Ablation-CAM at layer `layer` (by index), whose activation on the image is `activation`
    /// (`[1, C, h, w]`), for class `target` whose logit on the image is `intact`; sent as `name`,
    /// upsampled to `upsample` (`(H, W)`) if given.
    pub(super) fn new(
        name: String,
        (layer, activation): (usize, Array4<f32>),
        upsample: Option<(usize, usize)>,
        (target, intact): (usize, f64),
    ) -> Self {
        let activation = activation.index_axis_move(Axis(0), 0);
        let minimum = activation.iter().copied().fold(f32::INFINITY, f32::min);
        let ablated = if minimum == 0.0 { 0.0 } else { minimum - ABLATION_OFFSET };
        let scores = Array1::zeros(activation.dim().0);
        Self { name, layer, activation, ablated, upsample, target, intact, scores }
    }
}

impl RowSet for AblationCam {
    fn len(&self) -> usize {
        self.activation.dim().0
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Tail(self.layer)
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            row.assign(&self.activation);
            row.index_axis_mut(Axis(0), start + i).fill(self.ablated);
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            self.scores[start + i] = f64::from(logits[self.target]);
        }
        Ok(())
    }
}

impl AttributionRows for AblationCam {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let weights = self.scores.iter().map(|&score| ((self.intact - score) / self.intact) as f32);
        vec![named(self.name, methods::weighted_map(self.activation.view(), weights, self.upsample))]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array, s};

    use super::*;

    #[test]
    fn each_row_ablates_its_channel_and_channels_weigh_the_relative_drop() {
        let activation = array![[[[1.0_f32, 0.0]], [[0.0, 3.0]]]];
        let mut cam = AblationCam::new("a".into(), (4, activation), None, (1, 2.0));
        assert_eq!(cam.graph(), GraphKind::Tail(4));
        let mut rows = Array4::from_elem((2, 2, 1, 2), f32::NAN);
        cam.fill(0, rows.view_mut());
        assert_eq!(rows, array![[[[0.0_f32, 0.0]], [[0.0, 3.0]]], [[[1.0, 0.0]], [[0.0, 0.0]]]]);
        // Target logit 2 intact; 1.5 without channel 0 (weight ¼), 3 without channel 1 (weight −½).
        let logits = Array2::from_shape_vec((2, 2), vec![0.0_f32, 1.5, 0.0, 3.0]).unwrap();
        cam.absorb(0, RowOutputs { logits: logits.slice(s![.., ..]), gradients: None }).unwrap();
        let map = Box::new(cam).finish().remove(0).tensor;
        // ReLU(¼ · [1, 0] − ½ · [0, 3]) = [¼, 0].
        assert_eq!(map.iter().copied().collect::<Vec<_>>(), [0.25, 0.0]);
    }

    #[test]
    fn without_a_zero_minimum_a_channel_is_ablated_far_below_it() {
        let activation = array![[[[-1.0_f32, 2.0]], [[0.5, 3.0]]]];
        let mut cam = AblationCam::new("a".into(), (0, activation), None, (0, 1.0));
        let mut rows = Array4::zeros((1, 2, 1, 2));
        cam.fill(1, rows.view_mut());
        assert_eq!(rows.slice(s![0, 1, 0, ..]).to_vec(), [-1.0 - 1e7; 2]);
        assert_eq!(rows.slice(s![0, 0, 0, ..]).to_vec(), [-1.0, 2.0]);
    }
}
