//! Attributions computed from one gradient run of the image itself: saliency, input × gradient and
//! the class activation maps — Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM — (with
//! PyTorch's bilinear upsampling, `align_corners = false`).

use ndarray::{Array4, ArrayView4, Axis, Zip};

use super::job::CamVariant;

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
/// relatives as pytorch-grad-cam 1.5 does (same epsilons); always ReLU(Σ_c …).
pub(super) fn class_activation_map(
    activation: ArrayView4<'_, f32>,
    gradient: ArrayView4<'_, f32>,
    variant: CamVariant,
) -> Array4<f32> {
    let (_, channels, height, width) = activation.dim();
    let mut map = Array4::<f32>::zeros((1, 1, height, width));
    let mut out = map.index_axis_mut(Axis(0), 0);
    let mut out = out.index_axis_mut(Axis(0), 0);
    for c in 0..channels {
        let a = activation.index_axis(Axis(0), 0).index_axis_move(Axis(0), c);
        let g = gradient.index_axis(Axis(0), 0).index_axis_move(Axis(0), c);
        let weight = match variant {
            CamVariant::GradCam => Some(g.mean().unwrap_or(0.0)),
            CamVariant::GradCamPlusPlus => {
                let sum_a: f64 = a.iter().map(|&v| f64::from(v)).sum();
                let weight = g.iter().filter(|&&v| v > 0.0).fold(0.0_f64, |sum, &v| {
                    let v = f64::from(v);
                    sum + v * v * v / (2.0 * v * v + sum_a * v * v * v + 1e-6)
                });
                Some(weight as f32)
            }
            CamVariant::XGradCam => {
                let sum_a: f64 = a.iter().map(|&v| f64::from(v)).sum();
                let sum_ga: f64 = Zip::from(&g).and(&a).fold(0.0, |sum, &g, &a| sum + f64::from(g) * f64::from(a));
                Some((sum_ga / (sum_a + 1e-7)) as f32)
            }
            CamVariant::HiResCam | CamVariant::LayerCam => None,
        };
        match (weight, variant) {
            (Some(weight), _) => Zip::from(&mut out).and(&a).for_each(|m, &a| *m += weight * a),
            (None, CamVariant::LayerCam) => {
                Zip::from(&mut out).and(&a).and(&g).for_each(|m, &a, &g| *m += g.max(0.0) * a)
            }
            (None, _) => Zip::from(&mut out).and(&a).and(&g).for_each(|m, &a, &g| *m += g * a),
        }
    }
    map.mapv_inplace(|v| v.max(0.0));
    map
}

/// Source index and weight of bilinear interpolation along one axis (align_corners = false).
fn source(destination: usize, from: usize, to: usize) -> (usize, usize, f32) {
    let scale = from as f32 / to as f32;
    let position = ((destination as f32 + 0.5) * scale - 0.5).max(0.0);
    let low = (position as usize).min(from - 1);
    let high = (low + 1).min(from - 1);
    (low, high, position - low as f32)
}

/// Bilinear resize of a `[1, 1, h, w]` map to `[1, 1, height, width]`, as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`.
pub(super) fn upsample_bilinear(map: &Array4<f32>, height: usize, width: usize) -> Array4<f32> {
    let (_, _, h, w) = map.dim();
    let rows: Vec<_> = (0..height).map(|y| source(y, h, height)).collect();
    let columns: Vec<_> = (0..width).map(|x| source(x, w, width)).collect();
    Array4::from_shape_fn((1, 1, height, width), |(_, _, y, x)| {
        let ((y0, y1, ly), (x0, x1, lx)) = (rows[y], columns[x]);
        let at = |yy: usize, xx: usize| map[[0, 0, yy, xx]];
        (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1))
    })
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
            class_activation_map(activation.view(), gradient.view(), CamVariant::GradCam).iter().all(|&v| v == 0.0)
        );
        let gradient = array![[[[2.0_f32, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]]];
        // weights 0.5 and −0.25: [0.25, 0.75, 1.25, 1.75].
        let map = class_activation_map(activation.view(), gradient.view(), CamVariant::GradCam);
        assert_eq!(map, array![[[[0.25_f32, 0.75], [1.25, 1.75]]]]);
    }

    #[test]
    fn the_elementwise_variants_weight_each_position() {
        let activation = array![[[[1.0_f32, 2.0], [3.0, 4.0]]]];
        let gradient = array![[[[1.0_f32, -1.0], [0.5, 0.0]]]];
        let hires = class_activation_map(activation.view(), gradient.view(), CamVariant::HiResCam);
        assert_eq!(hires, array![[[[1.0_f32, 0.0], [1.5, 0.0]]]], "ReLU of [1, -2, 1.5, 0]");
        let layer_cam = class_activation_map(activation.view(), (-&gradient).view(), CamVariant::LayerCam);
        assert_eq!(layer_cam, array![[[[0.0_f32, 2.0], [0.0, 0.0]]]], "only the positive gradient counts");
    }

    #[test]
    fn xgrad_cam_weights_by_the_activation_weighted_gradient() {
        let activation = array![[[[1.0_f32, 3.0]]]];
        let gradient = array![[[[2.0_f32, 1.0]]]];
        // w = (2·1 + 1·3) / (1 + 3) = 1.25 → [1.25, 3.75].
        let map = class_activation_map(activation.view(), gradient.view(), CamVariant::XGradCam);
        assert!((map[[0, 0, 0, 1]] - 3.75).abs() < 1e-5, "{map:?}");
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
