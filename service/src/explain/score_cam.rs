//! Score-CAM as pytorch-grad-cam 1.5 computes it: one forward row per channel of a layer's
//! activation, the input masked by that channel (upsampled with `align_corners = true`, min-max
//! scaled); the channels' weights are the softmax of the target logits of those rows.

use ndarray::{Array1, Array3, Array4, ArrayViewMut4, Axis, Zip};

use super::{
    ExplainError, NamedTensor,
    methods::{self, Alignment},
    rows::{AttributionRows, RowOutputs, RowSet, named},
};
use crate::engine::GraphKind;

/// The rows of one Score-CAM attribution.
pub(super) struct ScoreCam {
    name: String,
    input: Array4<f32>,
    /// The layer's activation, `[C, h, w]`.
    activation: Array3<f32>,
    upsample: bool,
    target: usize,
    /// The target logit of each channel's row.
    scores: Array1<f64>,
}

impl ScoreCam {
    /// Score-CAM of `input` (`[1, 3, H, W]`) at a layer whose activation on it is `activation`
    /// (`[1, C, h, w]`), for class `target`, sent as `name`; upsampled to the input if `upsample`.
    pub(super) fn new(
        name: String,
        input: Array4<f32>,
        activation: Array4<f32>,
        upsample: bool,
        target: usize,
    ) -> Self {
        let activation = activation.index_axis_move(Axis(0), 0);
        let scores = Array1::zeros(activation.dim().0);
        Self { name, input, activation, upsample, target, scores }
    }
}

impl RowSet for ScoreCam {
    fn len(&self) -> usize {
        self.activation.dim().0
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Forward
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        let (_, _, height, width) = self.input.dim();
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            let channel = self.activation.index_axis(Axis(0), start + i);
            let mut mask = methods::resize_bilinear(channel, height, width, Alignment::Corners);
            let max = mask.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let min = mask.iter().copied().fold(f32::INFINITY, f32::min);
            mask.mapv_inplace(|v| (v - min) / (max - min + 1e-8));
            for (mut plane, image) in
                row.axis_iter_mut(Axis(0)).zip(self.input.index_axis(Axis(0), 0).axis_iter(Axis(0)))
            {
                Zip::from(&mut plane).and(&image).and(&mask).for_each(|out, &x, &m| *out = x * m);
            }
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            self.scores[start + i] = f64::from(logits[self.target]);
        }
        Ok(())
    }
}

impl AttributionRows for ScoreCam {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let max = self.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exponentials = self.scores.mapv(|score| (score - max).exp());
        let total = exponentials.sum();
        let weights = exponentials.iter().map(|&e| (e / total) as f32);
        let (_, _, height, width) = self.input.dim();
        let map = methods::weighted_map(self.activation.view(), weights, self.upsample.then_some((height, width)));
        vec![named(self.name, map)]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array, s};

    use super::*;

    #[test]
    fn channels_are_weighted_by_the_softmax_of_their_rows_logits() {
        // A 1 × 2 input; channel 0 lights the left pixel, channel 1 the right one.
        let input = Array4::from_elem((1, 3, 1, 2), 2.0_f32);
        let activation = array![[[[1.0_f32, 0.0]], [[0.0, 3.0]]]];
        let mut score_cam = ScoreCam::new("s".into(), input, activation, false, 1);
        let mut rows = Array4::zeros((2, 3, 1, 2));
        score_cam.fill(0, rows.view_mut());
        // Masks min-max scaled to [1, 0] and [0, 1] (up to the 1e-8 guard).
        assert!((rows[[0, 2, 0, 0]] - 2.0).abs() < 1e-6 && rows[[0, 2, 0, 1]] == 0.0, "{rows:?}");
        assert!(rows[[1, 0, 0, 0]] == 0.0 && (rows[[1, 0, 0, 1]] - 2.0).abs() < 1e-6, "{rows:?}");
        // Target logits 0 and ln 3: weights 1/4 and 3/4.
        let logits = Array2::from_shape_vec((2, 2), vec![9.0_f32, 0.0, 9.0, 3.0_f32.ln()]).unwrap();
        score_cam.absorb(0, RowOutputs { logits: logits.slice(s![.., ..]), gradients: None }).unwrap();
        let map = Box::new(score_cam).finish().remove(0).tensor;
        let expected = [0.25_f32, 2.25];
        assert!(map.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{map:?}");
    }
}
