//! Occlusion as Captum computes it: one forward row per window position, the window's pixels (all
//! colour channels) taken from the baseline; every pixel gets the mean, over the windows that cover
//! it, of objective(image) − objective(occluded image).

use ndarray::{Array2, Array4, ArrayViewMut4, Axis, Zip, s};

use super::{
    ExplainError, NamedTensor,
    job::{Objective, OcclusionWindows},
    rows::{RowOutputs, RowSet, named, objective_value},
};
use crate::engine::GraphKind;

/// The rows of one Occlusion attribution.
pub(super) struct Occlusion {
    name: String,
    input: Array4<f32>,
    baseline: Array4<f32>,
    windows: OcclusionWindows,
    target: usize,
    objective: Objective,
    /// The objective on the image itself.
    unoccluded: f64,
    /// Σ over covering windows of the objective's drop, per pixel.
    drops: Array2<f64>,
}

impl Occlusion {
    /// Occlusion of `input` (`[1, 3, H, W]`) by `windows` filled from `baseline` (same shape), for
    /// `target` under `objective`, whose value on `input` is `unoccluded`; sent as `name`.
    pub(super) fn new(
        name: String,
        input: Array4<f32>,
        baseline: Array4<f32>,
        windows: OcclusionWindows,
        (target, objective): (usize, Objective),
        unoccluded: f64,
    ) -> Self {
        let (_, _, height, width) = input.dim();
        let drops = Array2::zeros((height, width));
        Self { name, input, baseline, windows, target, objective, unoccluded, drops }
    }

    fn window(&self, index: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (_, _, height, width) = self.input.dim();
        self.windows.window(index, height, width)
    }
}

impl RowSet for Occlusion {
    fn len(&self) -> usize {
        self.windows.count()
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Forward
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            row.assign(&self.input.index_axis(Axis(0), 0));
            let (rows, columns) = self.window(start + i);
            row.slice_mut(s![.., rows.clone(), columns.clone()]).assign(&self.baseline.slice(s![0, .., rows, columns]));
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            let drop = self.unoccluded - objective_value(logits, self.target, self.objective);
            let (rows, columns) = self.window(start + i);
            self.drops.slice_mut(s![rows, columns]).mapv_inplace(|sum| sum + drop);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let (_, channels, height, width) = self.input.dim();
        let mut covering = Array2::<u32>::zeros((height, width));
        for index in 0..self.windows.count() {
            let (rows, columns) = self.window(index);
            covering.slice_mut(s![rows, columns]).mapv_inplace(|count| count + 1);
        }
        let mut mean = Array2::<f32>::zeros((height, width));
        // Every pixel lies under at least one window: the first row and column of windows start at
        // 0 and successive windows overlap or touch (stride ≤ side).
        Zip::from(&mut mean).and(&self.drops).and(&covering).for_each(|m, &drop, &count| {
            *m = (drop / f64::from(count.max(1))) as f32;
        });
        let attribution = Array4::from_shape_fn((1, channels, height, width), |(_, _, y, x)| mean[[y, x]]);
        vec![named(self.name, attribution)]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array4, array};

    use super::*;

    /// A "model" whose logit 0 is the sum of the image's first channel: occluding a window with
    /// zeros drops it by the window's sum.
    fn logits_of(images: &Array4<f32>) -> Array2<f32> {
        Array2::from_shape_fn((images.dim().0, 1), |(row, _)| images.slice(s![row, 0, .., ..]).sum())
    }

    #[test]
    fn each_pixel_gets_the_mean_drop_of_the_windows_over_it() {
        let input = Array4::from_shape_fn((1, 3, 3, 3), |(_, c, y, x)| if c == 0 { (y * 3 + x) as f32 } else { 9.0 });
        let baseline = Array4::zeros(input.raw_dim());
        let windows = OcclusionWindows::new(2, 1, 3, 3).unwrap();
        let unoccluded = f64::from(input.slice(s![0, 0, .., ..]).sum());
        let mut occlusion = Occlusion::new("o".into(), input, baseline, windows, (0, Objective::Logit), unoccluded);
        assert_eq!(occlusion.len(), 4);
        let mut images = Array4::zeros((4, 3, 3, 3));
        occlusion.fill(0, images.view_mut());
        assert_eq!(images.slice(s![3, 0, .., ..]), array![[0.0_f32, 1.0, 2.0], [3.0, 0.0, 0.0], [6.0, 0.0, 0.0]]);
        assert_eq!((images[[3, 1, 2, 2]], images[[3, 1, 0, 0]]), (0.0, 9.0), "every channel is occluded");
        let logits = logits_of(&images);
        // Two batches, as the engine may split them.
        occlusion.absorb(0, RowOutputs { logits: logits.slice(s![0..3, ..]), gradients: None }).unwrap();
        occlusion.absorb(3, RowOutputs { logits: logits.slice(s![3..4, ..]), gradients: None }).unwrap();
        let tensor = Box::new(occlusion).finish().remove(0).tensor;
        // Window sums: top left 0+1+3+4 = 8, top right 12, bottom left 20, bottom right 24.
        // Pixel (0, 0) lies under one window (8); (1, 1) under all four (16); (0, 1) under two (10).
        let expected = array![[8.0_f32, 10.0, 12.0], [14.0, 16.0, 18.0], [20.0, 22.0, 24.0]];
        for channel in 0..3 {
            assert_eq!(tensor.slice(s![0, channel, .., ..]), expected);
        }
    }
}
