//! Attributions computed from one gradient run of the image itself: saliency, input × gradient and
//! Grad-CAM (with PyTorch's bilinear upsampling, `align_corners = false`).

use ndarray::{Array4, ArrayView4, Axis, Zip};

/// The input gradient, or its absolute value.
pub(super) fn saliency(gradient: ArrayView4<'_, f32>, absolute: bool) -> Array4<f32> {
    if absolute { gradient.mapv(f32::abs) } else { gradient.to_owned() }
}

/// Input ⊙ gradient.
pub(super) fn input_x_gradient(input: ArrayView4<'_, f32>, gradient: ArrayView4<'_, f32>) -> Array4<f32> {
    &input * &gradient
}

/// Grad-CAM as Captum's `LayerGradCam` computes it: channel weights are the spatial mean of the
/// layer's gradient; the map is ReLU(Σ_c w_c · A_c), shaped `[1, 1, h, w]`.
pub(super) fn grad_cam(activation: ArrayView4<'_, f32>, gradient: ArrayView4<'_, f32>) -> Array4<f32> {
    let (_, channels, height, width) = activation.dim();
    let mut map = Array4::<f32>::zeros((1, 1, height, width));
    for c in 0..channels {
        let weight = gradient.index_axis(Axis(1), c).mean().unwrap_or(0.0);
        Zip::from(map.index_axis_mut(Axis(1), 0))
            .and(activation.index_axis(Axis(1), c))
            .for_each(|m, &a| *m += weight * a);
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
        assert!(grad_cam(activation.view(), gradient.view()).iter().all(|&v| v == 0.0));
        let gradient = array![[[[2.0_f32, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]]];
        // weights 0.5 and −0.25: [0.25, 0.75, 1.25, 1.75].
        let map = grad_cam(activation.view(), gradient.view());
        assert_eq!(map, array![[[[0.25_f32, 0.75], [1.25, 1.75]]]]);
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
