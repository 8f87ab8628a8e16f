//! Attributions computed from one gradient run of the image itself: saliency, input × gradient,
//! the class activation maps — Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, EigenCAM,
//! EigenGradCAM — with PyTorch's bilinear upsampling (`align_corners = false`), and Guided
//! Grad-CAM with its nearest-neighbour upsampling.

use ndarray::{Array2, Array4, ArrayView2, ArrayView3, ArrayView4, Axis, Zip};

use super::{
    eigen::{NotConverged, first_component_projection},
    job::CamVariant,
};

/// The input gradient, or its absolute value.
pub(super) fn saliency(gradient: ArrayView4<'_, f32>, absolute: bool) -> Array4<f32> {
    if absolute { gradient.mapv(f32::abs) } else { gradient.to_owned() }
}

/// Input ⊙ gradient.
pub(super) fn input_x_gradient(input: ArrayView4<'_, f32>, gradient: ArrayView4<'_, f32>) -> Array4<f32> {
    &input * &gradient
}

/// A class activation map, `[1, 1, h, w]`, from a layer's activation and the objective's gradient
/// with respect to it (`[1, C, h, w]` each): Grad-CAM as Captum's `LayerGradCam` computes it, its
/// relatives as pytorch-grad-cam 1.5 does (same epsilons); always ReLU(…).
pub(super) fn class_activation_map(
    activation: ArrayView4<'_, f32>,
    gradient: ArrayView4<'_, f32>,
    variant: CamVariant,
) -> Result<Array4<f32>, NotConverged> {
    let (activation, gradient) = (activation.index_axis_move(Axis(0), 0), gradient.index_axis_move(Axis(0), 0));
    let mut map = match variant {
        CamVariant::GradCam => {
            weighted_channels(activation, per_channel(activation, gradient, |_, g| g.mean().unwrap_or(0.0)))
        }
        CamVariant::GradCamPlusPlus => {
            weighted_channels(activation, per_channel(activation, gradient, grad_cam_plus_plus_weight))
        }
        CamVariant::XGradCam => weighted_channels(activation, per_channel(activation, gradient, xgrad_cam_weight)),
        CamVariant::HiResCam => (&gradient * &activation).sum_axis(Axis(0)),
        CamVariant::LayerCam => (gradient.mapv(|g| g.max(0.0)) * activation).sum_axis(Axis(0)),
        CamVariant::EigenCam => first_component_projection(activation)?,
        CamVariant::EigenGradCam => first_component_projection((&gradient * &activation).view())?,
    };
    map.mapv_inplace(|v| v.max(0.0));
    Ok(map.insert_axis(Axis(0)).insert_axis(Axis(0)))
}

/// Σ_c w_c A_c over the channels of `activation` (`[C, h, w]`), with `weights` one per channel.
fn weighted_channels(activation: ArrayView3<'_, f32>, weights: impl IntoIterator<Item = f32>) -> Array2<f32> {
    let (_, height, width) = activation.dim();
    let mut out = Array2::<f32>::zeros((height, width));
    for (a, w) in activation.axis_iter(Axis(0)).zip(weights) {
        Zip::from(&mut out).and(&a).for_each(|m, &a| *m += w * a);
    }
    out
}

/// Each channel's weight from its activation and gradient (`[C, h, w]` each).
fn per_channel<'a>(
    activation: ArrayView3<'a, f32>,
    gradient: ArrayView3<'a, f32>,
    weight: impl Fn(ArrayView2<'_, f32>, ArrayView2<'_, f32>) -> f32 + 'a,
) -> impl Iterator<Item = f32> + 'a {
    activation.into_outer_iter().zip(gradient.into_outer_iter()).map(move |(a, g)| weight(a, g))
}

/// ReLU(Σ_c w_c A_c) over the channels of `activation` (`[C, h, w]`) with `weights` (one per
/// channel) as a `[1, 1, h, w]` map, upsampled bilinearly to `upsample` (`(H, W)`) if given: the map
/// of the CAMs whose weights come from extra rows (Score-CAM, Ablation-CAM).
pub(super) fn weighted_map(
    activation: ArrayView3<'_, f32>,
    weights: impl IntoIterator<Item = f32>,
    upsample: Option<(usize, usize)>,
) -> Array4<f32> {
    let mut map = weighted_channels(activation, weights);
    map.mapv_inplace(|v| v.max(0.0));
    let map = map.insert_axis(Axis(0)).insert_axis(Axis(0));
    match upsample {
        Some((height, width)) => upsample_bilinear(&map, height, width),
        None => map,
    }
}

/// Grad-CAM++'s channel weight: Σ_ij ReLU(G) α, α = G² / (2 G² + (Σ_ij A) G³ + 1e-6).
fn grad_cam_plus_plus_weight(a: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>) -> f32 {
    let sum_a: f64 = a.iter().map(|&v| f64::from(v)).sum();
    let weight = g.iter().filter(|&&v| v > 0.0).fold(0.0_f64, |sum, &v| {
        let v = f64::from(v);
        sum + v * v * v / (2.0 * v * v + sum_a * v * v * v + 1e-6)
    });
    weight as f32
}

/// XGrad-CAM's channel weight: Σ_ij G A / (Σ_ij A + 1e-7).
fn xgrad_cam_weight(a: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>) -> f32 {
    let sum_a: f64 = a.iter().map(|&v| f64::from(v)).sum();
    let sum_ga: f64 = Zip::from(&g).and(&a).fold(0.0, |sum, &g, &a| sum + f64::from(g) * f64::from(a));
    (sum_ga / (sum_a + 1e-7)) as f32
}

/// Guided Grad-CAM as Captum's `GuidedGradCam`: the guided-backpropagation gradient (`[1, 3, H, W]`)
/// times the Grad-CAM map (`[1, 1, h, w]`) upsampled to `H × W` by nearest neighbour.
pub(super) fn guided_grad_cam(guided: ArrayView4<'_, f32>, cam: &Array4<f32>) -> Array4<f32> {
    let (_, _, height, width) = guided.dim();
    let cam = upsample_nearest(cam.index_axis(Axis(0), 0).index_axis_move(Axis(0), 0), height, width);
    &guided * &cam.broadcast(guided.dim()).expect("an [H, W] map broadcasts to [1, 3, H, W]")
}

/// Source index of nearest-neighbour resizing along one axis, as PyTorch's `mode="nearest"`
/// computes it: ⌊destination · (from / to)⌋ in float32.
fn nearest_source(destination: usize, from: usize, to: usize) -> usize {
    let scale = from as f32 / to as f32;
    ((destination as f32 * scale).floor() as usize).min(from - 1)
}

/// Nearest-neighbour resize of an `[h, w]` map to `[height, width]`, as
/// `torch.nn.functional.interpolate(mode="nearest")`.
fn upsample_nearest(map: ArrayView2<'_, f32>, height: usize, width: usize) -> Array2<f32> {
    let (h, w) = map.dim();
    let rows: Vec<_> = (0..height).map(|y| nearest_source(y, h, height)).collect();
    let columns: Vec<_> = (0..width).map(|x| nearest_source(x, w, width)).collect();
    Array2::from_shape_fn((height, width), |(y, x)| map[[rows[y], columns[x]]])
}

/// Where bilinear interpolation takes its source positions from: PyTorch's `align_corners`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alignment {
    /// `align_corners=False` (`interpolate`'s default): pixel centres scale with the size.
    Centres,
    /// `align_corners=True` (`nn.UpsamplingBilinear2d`): the corner pixels stay in place.
    Corners,
}

/// Source indices and weight of bilinear interpolation along one axis.
fn source(destination: usize, from: usize, to: usize, alignment: Alignment) -> (usize, usize, f32) {
    let position = match alignment {
        Alignment::Centres => ((destination as f32 + 0.5) * (from as f32 / to as f32) - 0.5).max(0.0),
        Alignment::Corners if to > 1 => destination as f32 * ((from - 1) as f32 / (to - 1) as f32),
        Alignment::Corners => 0.0,
    };
    let low = (position as usize).min(from - 1);
    let high = (low + 1).min(from - 1);
    (low, high, position - low as f32)
}

/// Bilinear resize of an `[h, w]` map to `[height, width]`, as `torch.nn.functional.interpolate(
/// mode="bilinear")` with `align_corners` as `alignment` says.
pub(super) fn resize_bilinear(
    map: ArrayView2<'_, f32>,
    height: usize,
    width: usize,
    alignment: Alignment,
) -> Array2<f32> {
    let (h, w) = map.dim();
    let rows: Vec<_> = (0..height).map(|y| source(y, h, height, alignment)).collect();
    let columns: Vec<_> = (0..width).map(|x| source(x, w, width, alignment)).collect();
    Array2::from_shape_fn((height, width), |(y, x)| {
        let ((y0, y1, ly), (x0, x1, lx)) = (rows[y], columns[x]);
        let at = |yy: usize, xx: usize| map[[yy, xx]];
        (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1))
    })
}

/// Bilinear resize of a `[1, 1, h, w]` map to `[1, 1, height, width]`, as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`.
pub(super) fn upsample_bilinear(map: &Array4<f32>, height: usize, width: usize) -> Array4<f32> {
    let plane = map.index_axis(Axis(0), 0).index_axis_move(Axis(0), 0);
    resize_bilinear(plane, height, width, Alignment::Centres).insert_axis(Axis(0)).insert_axis(Axis(0))
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn grad_cam_weights_channels_by_mean_gradient_and_clips_negatives() {
        let activation = array![[[[1.0_f32, 2.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]]];
        let gradient = array![[[[1.0_f32, 1.0], [1.0, 1.0]], [[-10.0, -10.0], [-10.0, -10.0]]]];
        // weights 1 and −10: 1·A0 − 10·A1 = [−9, −8, −7, −6] → all clipped to 0 but none positive.
        assert!(
            class_activation_map(activation.view(), gradient.view(), CamVariant::GradCam)
                .unwrap()
                .iter()
                .all(|&v| v == 0.0)
        );
        let gradient = array![[[[2.0_f32, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]]];
        // weights 0.5 and −0.25: [0.25, 0.75, 1.25, 1.75].
        let map = class_activation_map(activation.view(), gradient.view(), CamVariant::GradCam).unwrap();
        assert_eq!(map, array![[[[0.25_f32, 0.75], [1.25, 1.75]]]]);
    }

    #[test]
    fn the_elementwise_variants_weight_each_position() {
        let activation = array![[[[1.0_f32, 2.0], [3.0, 4.0]]]];
        let gradient = array![[[[1.0_f32, -1.0], [0.5, 0.0]]]];
        let hires = class_activation_map(activation.view(), gradient.view(), CamVariant::HiResCam).unwrap();
        assert_eq!(hires, array![[[[1.0_f32, 0.0], [1.5, 0.0]]]], "ReLU of [1, -2, 1.5, 0]");
        let layer_cam = class_activation_map(activation.view(), (-&gradient).view(), CamVariant::LayerCam).unwrap();
        assert_eq!(layer_cam, array![[[[0.0_f32, 2.0], [0.0, 0.0]]]], "only the positive gradient counts");
    }

    #[test]
    fn xgrad_cam_weights_by_the_activation_weighted_gradient() {
        let activation = array![[[[1.0_f32, 3.0]]]];
        let gradient = array![[[[2.0_f32, 1.0]]]];
        // w = (2·1 + 1·3) / (1 + 3) = 1.25 → [1.25, 3.75].
        let map = class_activation_map(activation.view(), gradient.view(), CamVariant::XGradCam).unwrap();
        assert!((map[[0, 0, 0, 1]] - 3.75).abs() < 1e-5, "{map:?}");
    }

    #[test]
    fn eigen_grad_cam_projects_the_gradient_weighted_activation() {
        // G ⊙ A = [[0, 0], [0, 4]] in one channel: centred [−1, −1, −1, 3], no flip.
        let activation = array![[[[1.0_f32, 2.0], [3.0, 4.0]]]];
        let gradient = array![[[[0.0_f32, 0.0], [0.0, 1.0]]]];
        let map = class_activation_map(activation.view(), gradient.view(), CamVariant::EigenGradCam).unwrap();
        assert!(map.iter().zip([0.0_f32, 0.0, 0.0, 3.0]).all(|(a, b)| (a - b).abs() < 1e-5), "{map:?}");
    }

    #[test]
    fn nearest_upsampling_matches_pytorch() {
        // torch.nn.functional.interpolate(torch.arange(3.).reshape(1, 1, 1, 3), size=(1, 7),
        // mode="nearest") → [0, 0, 0, 1, 1, 2, 2]; from 4 to 112, destinations 25..31 come from
        // [0, 0, 0, 1, 1, 1].
        let map = array![[0.0_f32, 1.0, 2.0]];
        assert_eq!(upsample_nearest(map.view(), 1, 7), array![[0.0_f32, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0]]);
        assert_eq!((25..31).map(|x| nearest_source(x, 4, 112)).collect::<Vec<_>>(), [0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn guided_grad_cam_scales_each_colour_channel_by_the_map() {
        let guided =
            Array4::from_shape_fn((1, 3, 2, 2), |(_, c, y, x)| (c + 1) as f32 * if x == y { 1.0 } else { -1.0 });
        let cam = array![[[[2.0_f32]]]];
        let result = guided_grad_cam(guided.view(), &cam);
        assert_eq!(result, &guided * 2.0);
    }

    #[test]
    fn corner_aligned_upsampling_matches_pytorch() {
        // torch.nn.UpsamplingBilinear2d(size=(1, 5))(torch.tensor([[[[0., 4.]]]])) → [0, 1, 2, 3, 4].
        let map = array![[0.0_f32, 4.0]];
        let resized = resize_bilinear(map.view(), 1, 5, Alignment::Corners);
        assert!(resized.iter().zip([0.0_f32, 1.0, 2.0, 3.0, 4.0]).all(|(a, b)| (a - b).abs() < 1e-6), "{resized:?}");
    }

    #[test]
    fn bilinear_upsampling_matches_pytorch() {
        // torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False)
        let map = array![[[[1.0_f32, 2.0], [3.0, 4.0]]]];
        let expected = array![[[
            [1.0_f32, 1.25, 1.75, 2.0],
            [1.5, 1.75, 2.25, 2.5],
            [2.5, 2.75, 3.25, 3.5],
            [3.0, 3.25, 3.75, 4.0]
        ]]];
        let upsampled = upsample_bilinear(&map, 4, 4);
        assert!(upsampled.iter().zip(expected.iter()).all(|(a, b)| (a - b).abs() < 1e-6), "{upsampled:?}");
    }
}
