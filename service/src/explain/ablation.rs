//! Occlusion and Feature Ablation as Captum computes them: one forward row per region — a window
//! position, or a segment the caller gave — its pixels (all colour channels) taken from the
//! baseline; every pixel gets the mean, over the regions that cover it, of objective(image) −
//! objective(ablated image). (Segments cover each pixel once.)

use ndarray::{Array2, Array4, ArrayViewMut4, Axis, Zip, s};

use super::{
    ExplainError, NamedTensor,
    job::{Objective, OcclusionWindows, Segments},
    rows::{AttributionRows, RowOutputs, RowSet, named, objective_value},
};
use crate::engine::GraphKind;

/// What the rows ablate, one region each.
pub(super) enum Regions {
    /// Occlusion's windows.
    Windows(OcclusionWindows),
    /// The caller's segments.
    Segments(Segments),
}

impl Regions {
    fn count(&self) -> usize {
        match self {
            Self::Windows(windows) => windows.count(),
            Self::Segments(segments) => segments.count,
        }
    }

    /// Calls `visit` with each pixel `(y, x)` of region `index` of a `height × width` input.
    fn for_each_pixel(&self, index: usize, (height, width): (usize, usize), mut visit: impl FnMut(usize, usize)) {
        match self {
            Self::Windows(windows) => {
                let (rows, columns) = windows.window(index, height, width);
                for y in rows {
                    for x in columns.clone() {
                        visit(y, x);
                    }
                }
            }
            Self::Segments(segments) => {
                for ((y, x), &segment) in segments.index.indexed_iter() {
                    if segment as usize == index {
                        visit(y, x);
                    }
                }
            }
        }
    }
}

/// The rows of one Occlusion or Feature Ablation attribution.
pub(super) struct Ablation {
    name: String,
    input: Array4<f32>,
    baseline: Array4<f32>,
    regions: Regions,
    target: usize,
    objective: Objective,
    /// The objective on the image itself.
    intact: f64,
    /// Σ over covering regions of the objective's drop, per pixel.
    drops: Array2<f64>,
}

impl Ablation {
    /// Ablation of `input` (`[1, 3, H, W]`) by `regions` filled from `baseline` (same shape), for
    /// `target` under `objective`, whose value on `input` is `intact`; sent as `name`.
    pub(super) fn new(
        name: String,
        (input, baseline): (Array4<f32>, Array4<f32>),
        regions: Regions,
        (target, objective): (usize, Objective),
        intact: f64,
    ) -> Self {
        let (_, _, height, width) = input.dim();
        let drops = Array2::zeros((height, width));
        Self { name, input, baseline, regions, target, objective, intact, drops }
    }

    fn size(&self) -> (usize, usize) {
        let (_, _, height, width) = self.input.dim();
        (height, width)
    }
}

impl RowSet for Ablation {
    fn len(&self) -> usize {
        self.regions.count()
    }

    fn graph(&self) -> GraphKind {
        GraphKind::Forward
    }

    fn fill(&mut self, start: usize, mut out: ArrayViewMut4<'_, f32>) {
        let size = self.size();
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            row.assign(&self.input.index_axis(Axis(0), 0));
            let baseline = &self.baseline;
            self.regions.for_each_pixel(start + i, size, |y, x| {
                row.slice_mut(s![.., y, x]).assign(&baseline.slice(s![0, .., y, x]));
            });
        }
    }

    fn absorb(&mut self, start: usize, outputs: RowOutputs<'_>) -> Result<(), ExplainError> {
        let size = self.size();
        for (i, logits) in outputs.logits.axis_iter(Axis(0)).enumerate() {
            let drop = self.intact - objective_value(logits, self.target, self.objective);
            let drops = &mut self.drops;
            self.regions.for_each_pixel(start + i, size, |y, x| drops[[y, x]] += drop);
        }
        Ok(())
    }
}

impl AttributionRows for Ablation {
    fn finish(self: Box<Self>) -> Vec<NamedTensor> {
        let (_, channels, height, width) = self.input.dim();
        let mut covering = Array2::<u32>::zeros((height, width));
        for index in 0..self.regions.count() {
            self.regions.for_each_pixel(index, (height, width), |y, x| covering[[y, x]] += 1);
        }
        let mut mean = Array2::<f32>::zeros((height, width));
        // Every pixel lies in at least one region: segments cover the input, and the first row and
        // column of windows start at 0 and successive windows overlap or touch (stride ≤ side).
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
        let windows = Regions::Windows(OcclusionWindows::new(2, 1, 3, 3).unwrap());
        let intact = f64::from(input.slice(s![0, 0, .., ..]).sum());
        let mut occlusion = Ablation::new("o".into(), (input, baseline), windows, (0, Objective::Logit), intact);
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

    #[test]
    fn each_pixel_gets_its_segments_drop() {
        let values = array![[1.0_f32, 2.0], [3.0, 10.0]];
        let input = Array4::from_shape_fn((1, 3, 2, 2), |(_, c, y, x)| if c == 0 { values[[y, x]] } else { 0.0 });
        let baseline = Array4::from_elem(input.raw_dim(), 0.5_f32);
        // Segment 0 (id 7): the diagonal, 1 and 10; segment 1 (id 9): 2 and 3.
        let segments = Regions::Segments(Segments::new(&[7, 9, 9, 7], 2, 2).unwrap());
        let mut ablation = Ablation::new("f".into(), (input, baseline), segments, (0, Objective::Logit), 16.0);
        let mut images = Array4::zeros((2, 3, 2, 2));
        ablation.fill(0, images.view_mut());
        assert_eq!(images.slice(s![0, 0, .., ..]), array![[0.5_f32, 2.0], [3.0, 0.5]]);
        assert_eq!(images.slice(s![1, 1, .., ..]), array![[0.0_f32, 0.5], [0.5, 0.0]]);
        let logits = logits_of(&images);
        ablation.absorb(0, RowOutputs { logits: logits.view(), gradients: None }).unwrap();
        // Drops: 16 − (0.5 + 2 + 3 + 0.5) = 10 for the diagonal, 16 − (1 + 0.5 + 0.5 + 10) = 4 for the rest.
        let tensor = Box::new(ablation).finish().remove(0).tensor;
        assert_eq!(tensor.slice(s![0, 2, .., ..]), array![[10.0_f32, 4.0], [4.0, 10.0]]);
    }
}
