//! Does the map point at the object? The pointing game and the relevance mass inside the
//! object's mask.

use ndarray::{ArrayView2, Zip};

use crate::FidelityError;

fn check(relevance: ArrayView2<'_, f32>, mask: ArrayView2<'_, bool>) -> Result<(), FidelityError> {
    if relevance.dim() != mask.dim() {
        return Err(FidelityError::Mismatch { map: relevance.dim(), mask: mask.dim() });
    }
    if !mask.iter().any(|&inside| inside) {
        return Err(FidelityError::EmptyMask);
    }
    Ok(())
}

/// The pointing game (Zhang et al. 2016, without tolerance): a hit when the map's maximum lies
/// on the object. When several pixels share the maximum, one of them on the object is a hit (as
/// Quantus counts it); a map whose values are all equal points nowhere and is a miss.
pub fn pointing_game(relevance: ArrayView2<'_, f32>, mask: ArrayView2<'_, bool>) -> Result<bool, FidelityError> {
    check(relevance, mask)?;
    let peak = relevance.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = relevance.iter().copied().fold(f32::INFINITY, f32::min);
    if peak == floor {
        return Ok(false);
    }
    Ok(Zip::from(&relevance).and(&mask).fold(false, |hit, &value, &inside| hit || (inside && value == peak)))
}

/// The share of the map's relevance that lies on the object (Arras et al. 2022's relevance mass
/// accuracy), in [0, 1] for non-negative maps.
pub fn relevance_mass(relevance: ArrayView2<'_, f32>, mask: ArrayView2<'_, bool>) -> Result<f64, FidelityError> {
    check(relevance, mask)?;
    let (inside, total) = Zip::from(&relevance).and(&mask).fold((0.0f64, 0.0f64), |(inside, total), &value, &on| {
        (if on { inside + f64::from(value) } else { inside }, total + f64::from(value))
    });
    if total == 0.0 {
        return Err(FidelityError::ZeroMap);
    }
    Ok(inside / total)
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn the_peak_on_the_object_is_a_hit_and_off_it_a_miss() {
        let mask = array![[false, true], [false, false]];
        assert!(pointing_game(array![[0.1, 0.9], [0.3, 0.2]].view(), mask.view()).unwrap());
        assert!(!pointing_game(array![[0.95, 0.9], [0.3, 0.2]].view(), mask.view()).unwrap());
    }

    #[test]
    fn a_shared_peak_counts_when_one_of_its_pixels_is_on_the_object() {
        let mask = array![[false, true], [false, false]];
        assert!(pointing_game(array![[0.9, 0.9], [0.3, 0.2]].view(), mask.view()).unwrap());
    }

    #[test]
    fn a_flat_map_points_nowhere() {
        let mask = array![[true, true], [false, false]];
        assert!(!pointing_game(array![[0.0, 0.0], [0.0, 0.0]].view(), mask.view()).unwrap());
    }

    #[test]
    fn relevance_mass_is_the_share_on_the_object() {
        let mask = array![[true, false], [false, true]];
        let mass = relevance_mass(array![[1.0, 2.0], [3.0, 4.0]].view(), mask.view()).unwrap();
        assert!((mass - 0.5).abs() < 1e-12);
    }

    #[test]
    fn undefined_cases_are_errors() {
        let none = array![[false, false]];
        assert_eq!(relevance_mass(array![[1.0, 2.0]].view(), none.view()), Err(FidelityError::EmptyMask));
        let some = array![[true, false]];
        assert_eq!(relevance_mass(array![[0.0, 0.0]].view(), some.view()), Err(FidelityError::ZeroMap));
        let other = array![[true], [false]];
        assert_eq!(
            pointing_game(array![[1.0, 2.0]].view(), other.view()),
            Err(FidelityError::Mismatch { map: (1, 2), mask: (2, 1) })
        );
    }
}
