//! From an attribution tensor to one relevance value per input pixel.

use ndarray::{Array2, ArrayViewD, Axis, Ix3};

use crate::FidelityError;

/// The relevance of each of the `height × width` input pixels: the sum over channels of the
/// attribution's absolute values (as Captum's and Quantus's visualisations reduce colour
/// attributions). Grad-CAM maps, one channel and non-negative, come out unchanged. Accepts
/// `[1, C, H, W]`, `[C, H, W]` and `[H, W]`.
pub fn pixel_relevance(
    attribution: ArrayViewD<'_, f32>,
    height: usize,
    width: usize,
) -> Result<Array2<f32>, FidelityError> {
    let shape = attribution.shape().to_vec();
    let wrong = || FidelityError::Shape { shape: shape.clone(), height, width };
    let channels_first = match shape.as_slice() {
        [1, _, h, w] if (*h, *w) == (height, width) => attribution.index_axis_move(Axis(0), 0),
        [_, h, w] if (*h, *w) == (height, width) => attribution,
        [h, w] if (*h, *w) == (height, width) => attribution.insert_axis(Axis(0)),
        _ => return Err(wrong()),
    };
    let channels_first = channels_first.into_dimensionality::<Ix3>().map_err(|_| wrong())?;
    if channels_first.iter().any(|v| !v.is_finite()) {
        return Err(FidelityError::NotFinite);
    }
    Ok(channels_first.fold_axis(Axis(0), 0.0, |sum, v| sum + v.abs()))
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn, array};

    use super::*;

    #[test]
    fn colour_attributions_sum_absolute_values_over_channels() {
        let values = ArrayD::from_shape_vec(IxDyn(&[1, 2, 1, 2]), vec![1.0, -2.0, -3.0, 0.5]).unwrap();
        assert_eq!(pixel_relevance(values.view(), 1, 2).unwrap(), array![[4.0, 2.5]]);
    }

    #[test]
    fn a_map_of_another_size_is_refused() {
        let values = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 4, 4]));
        let error = pixel_relevance(values.view(), 8, 8).unwrap_err();
        assert_eq!(error, FidelityError::Shape { shape: vec![1, 1, 4, 4], height: 8, width: 8 });
    }

    #[test]
    fn non_finite_values_are_refused() {
        let values = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![f32::NAN, 1.0]).unwrap();
        assert_eq!(pixel_relevance(values.view(), 1, 2).unwrap_err(), FidelityError::NotFinite);
    }
}
