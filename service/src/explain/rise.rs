//! RISE (Petsiuk, Das and Saenko 2018): random masks made from coarse grids of kept cells,
//! upsampled bilinearly and cropped at a random shift; each masked input runs forward once, and the
//! map is the masks weighted by the target's probability on them, over masks × keep.

use std::collections::VecDeque;

use ndarray::{Array2, Array4, ArrayViewMut4, Axis, Zip, s};

use super::{
    ExplainError, NamedTensor,
    job::RiseMasks,
    methods::{self, Alignment},
    prediction,
    rows::{AttributionRows, RowOutputs, RowSet, named},
};
use crate::{engine::GraphKind, noise::Noise};

/// The rows of one RISE attribution.
pub(super) struct Rise {
    name: String,
    /// The input, `[1, 3, H, W]`.
    input: Array4<f32>,
    masks: RiseMasks,
    target: usize,
    draws: Noise,
    /// The masks of the rows filled and not yet absorbed, in order.
    pending: VecDeque<Array2<f32>>,
    sum: Array2<f64>,
}

impl Rise {
    /// RISE of `input` (`[1, 3, H, W]`) with `masks` for class `target`, sent as `name`.
    pub(super) fn new(name: String, input: Array4<f32>, masks: RiseMasks, target: usize) -> Self {
        let (_, _, height, width) = input.dim();
        let draws = Noise::new(masks.seed);
        Self { name, input, masks, target, draws, pending: VecDeque::new(), sum: Array2::zeros((height, width)) }
    }

    /// The next mask of the stream, `[H, W]` in [0, 1].
    fn next_mask(&mut self) -> Array2<f32> {
        let (_, _, height, width) = self.input.dim();
        let cells = self.masks.cells;
        let keep = f64::from(self.masks.keep);
        let grid = Array2::from_shape_simple_fn((cells, cells), || f32::from(u8::from(self.draws.uniform() < keep)));
        let (cell_height, cell_width) = (height.div_ceil(cells), width.div_ceil(cells));
        let shift = |draws: &mut Noise, cell: usize| ((draws.uniform() * cell as f64) as usize).min(cell - 1);
        let (down, across) = (shift(&mut self.draws, cell_height), shift(&mut self.draws, cell_width));
        let upsampled = methods::resize_bilinear(
            grid.view(),
            (cells + 1) * cell_height,
            (cells + 1) * cell_width,
            Alignment::Centres,
        );
        upsampled.slice(s![down..down + height, across..across + width]).to_owned()
    }
}

impl RowSet for Rise {
    fn len(&self) -> usize {
        self.masks.count
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Forward
    }

    fn fill(&mut self, _start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for mut row in out.axis_iter_mut(Axis(0)) {
            let mask = self.next_mask();
            for (mut plane, image) in
                row.axis_iter_mut(Axis(0)).zip(self.input.index_axis(Axis(0), 0).axis_iter(Axis(0)))
            {
                Zip::from(&mut plane).and(&image).and(&mask).for_each(|out, &x, &m| *out = x * m);
            }
            self.pending.push_back(mask);
        }
    }

    fn absorb(&mut self, _start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for logits in outputs.logits.axis_iter(Axis(0)) {
            let mask = self
                .pending
                .pop_front()
                .ok_or_else(|| ExplainError::Internal("a RISE row came back unfilled".into()))?;
            let score = prediction::probability(logits, self.target);
            Zip::from(&mut self.sum).and(&mask).for_each(|s, &m| *s += score * f64::from(m));
        }
        Ok(())
    }
}

impl AttributionRows for Rise {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let scale = self.masks.count as f64 * f64::from(self.masks.keep);
        let map = self.sum.mapv(|s| (s / scale) as f32).insert_axis(Axis(0)).insert_axis(Axis(0));
        vec![named(self.name, map)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rise(count: usize, cells: usize, keep: f32) -> Rise {
        let input = Array4::from_elem((1, 3, 10, 12), 1.0_f32);
        Rise::new("r".into(), input, RiseMasks { count, cells, keep, seed: 5 }, 1)
    }

    #[test]
    fn masks_are_smooth_shifted_grids_kept_at_the_asked_rate() {
        let mut rise = rise(200, 3, 0.25);
        let masks: Vec<_> = (0..200).map(|_| rise.next_mask()).collect();
        assert!(masks.iter().all(|m| m.dim() == (10, 12) && m.iter().all(|&v| (0.0..=1.0).contains(&v))));
        let mean = masks.iter().map(|m| m.mean().unwrap()).sum::<f32>() / 200.0;
        assert!((mean - 0.25).abs() < 0.03, "mean mask {mean}");
        // Not only 0 and 1: bilinear edges between cells.
        assert!(masks.iter().any(|m| m.iter().any(|&v| v > 0.05 && v < 0.95)));
        // Cells of 4 × 4 pixels (⌈10 / 3⌉, ⌈12 / 3⌉) shifted by up to 3: shifts differ between masks.
        assert!(masks.windows(2).any(|pair| pair[0] != pair[1]));
        assert_eq!(rise.draws.uniform(), {
            let mut draws = Noise::new(5);
            (0..200 * (9 + 2)).for_each(|_| {
                draws.uniform();
            });
            draws.uniform()
        });
    }

    #[test]
    fn the_map_is_the_masks_weighted_by_the_targets_probability() {
        // Masks filled in two batches; the first row's logits give the target probability 1/2,
        // the second's 1/4 (against three equal others).
        let mut rise = rise(2, 2, 0.5);
        let mut rows = Array4::zeros((1, 3, 10, 12));
        rise.fill(0, rows.view_mut());
        let first = rise.pending[0].clone();
        assert_eq!(rows.index_axis(Axis(0), 0).index_axis(Axis(0), 2), first, "the input is all ones");
        let logits = ndarray::array![[0.0_f32, 0.0]];
        rise.absorb(0, RowOutputs { logits: logits.view(), gradients: None }).unwrap();
        rise.fill(1, rows.view_mut());
        let second = rise.pending[0].clone();
        let logits = ndarray::array![[0.0_f32, 0.0, 0.0, 0.0]];
        rise.absorb(1, RowOutputs { logits: logits.view(), gradients: None }).unwrap();
        let map = Box::new(rise).finish().remove(0).tensor;
        let expected = (first * 0.5 + second * 0.25) / (2.0 * 0.5);
        assert!(map.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
