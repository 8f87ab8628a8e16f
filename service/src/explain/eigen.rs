//! The first principal component of a layer's feature maps, as EigenCAM and EigenGradCAM take it:
//! the `[C, h, w]` values seen as `h·w` points in `C` dimensions, centred per channel, projected on
//! the top right singular vector; computed in float64 from the eigendecomposition of the smaller
//! Gram matrix (`h·w × h·w` or `C × C`).

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array2, ArrayView3, Axis};
use thiserror::Error;

/// Sweeps of the symmetric eigendecomposition before giving up (it needs a few per dimension).
const MAX_SWEEPS_PER_DIMENSION: usize = 64;

/// The eigendecomposition did not converge (it does on finite input; this bounds the work).
#[derive(Debug, Error)]
#[error("the eigendecomposition of a {0} × {0} Gram matrix did not converge")]
pub(super) struct NotConverged(usize);

/// The `[h, w]` projection of `values` (`[C, h, w]`) on its first principal component, its sign
/// chosen so that the largest magnitude is positive (negated when |min| > |max|, as
/// pytorch-grad-cam's `get_2d_projection_with_sign_correction` does). Non-finite values count as 0.
pub(super) fn first_component_projection(values: ArrayView3<'_, f32>) -> Result<Array2<f32>, NotConverged> {
    let (channels, height, width) = values.dim();
    let positions = height * width;
    // Points as rows: x[p, c], centred per channel.
    let mut points = DMatrix::<f64>::zeros(positions, channels);
    for (c, plane) in values.axis_iter(Axis(0)).enumerate() {
        for (p, &value) in plane.iter().enumerate() {
            points[(p, c)] = if value.is_finite() { f64::from(value) } else { 0.0 };
        }
        let mean = points.column(c).mean();
        points.column_mut(c).add_scalar_mut(-mean);
    }
    let projection = if positions <= channels {
        // X Xᵀ = U Σ² Uᵀ: the projection X v₁ is σ₁ u₁.
        let (value, vector) = top_eigenpair(&points * points.transpose())?;
        vector * value.max(0.0).sqrt()
    } else {
        // Xᵀ X = V Σ² Vᵀ: the projection is X v₁.
        let (_, vector) = top_eigenpair(points.transpose() * &points)?;
        &points * vector
    };
    let (min, max) = projection.iter().fold((0.0_f64, 0.0_f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let sign = if min.abs() > max.abs() { -1.0 } else { 1.0 };
    Ok(Array2::from_shape_fn((height, width), |(y, x)| (sign * projection[y * width + x]) as f32))
}

/// The largest eigenvalue of the symmetric `gram` and a unit eigenvector of it.
fn top_eigenpair(gram: DMatrix<f64>) -> Result<(f64, nalgebra::DVector<f64>), NotConverged> {
    let size = gram.nrows();
    let eigen = SymmetricEigen::try_new(gram, f64::EPSILON, MAX_SWEEPS_PER_DIMENSION * size.max(1))
        .ok_or(NotConverged(size))?;
    let top = eigen.eigenvalues.imax();
    Ok((eigen.eigenvalues[top], eigen.eigenvectors.column(top).into_owned()))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array3, array};

    use super::*;

    #[test]
    fn projects_on_the_direction_of_largest_variance() {
        // Two channels that vary together along 1, −1, 3, −3 (means 0): the component is
        // (1, 1)/√2, the projection (1·1 + 1·1)/√2 … = √2 · [1, −1, 3, −3]; |min| = |max| keeps +.
        let values = array![[[1.0_f32, -1.0], [3.0, -3.0]], [[1.0, -1.0], [3.0, -3.0]]];
        let projection = first_component_projection(values.view()).unwrap();
        let expected = array![[1.0_f32, -1.0], [3.0, -3.0]] * std::f32::consts::SQRT_2;
        assert!(projection.iter().zip(&expected).all(|(a, b)| (a.abs() - b.abs()).abs() < 1e-5), "{projection:?}");
    }

    #[test]
    fn centres_each_channel_and_makes_the_largest_magnitude_positive() {
        // One channel, offset by 10: centred it is [−1, −1, −1, 3] → the sign puts 3 on top.
        let values = array![[[9.0_f32, 9.0], [9.0, 13.0]]];
        let projection = first_component_projection(values.view()).unwrap();
        assert!((projection[[1, 1]] - 3.0).abs() < 1e-5 && (projection[[0, 0]] + 1.0).abs() < 1e-5, "{projection:?}");
    }

    #[test]
    fn either_gram_matrix_gives_the_scaled_top_singular_vector() {
        // 5 channels at 3 positions (through X Xᵀ) and 2 channels at 9 positions (through Xᵀ X):
        // either way the projection p = σ₁ u₁ is an eigenvector of X Xᵀ with eigenvalue ‖p‖² = σ₁².
        for (channels, height, width) in [(5, 1, 3), (2, 3, 3)] {
            let values = Array3::from_shape_fn((channels, height, width), |(c, y, x)| {
                ((c * 7 + y * 3 + x * 5) % 11) as f32 - 4.0
            });
            let projection = first_component_projection(values.view()).unwrap();
            let positions = height * width;
            let mut points =
                DMatrix::<f64>::from_fn(positions, channels, |p, c| f64::from(values[[c, p / width, p % width]]));
            for c in 0..channels {
                let mean = points.column(c).mean();
                points.column_mut(c).add_scalar_mut(-mean);
            }
            let gram = &points * points.transpose();
            let p = nalgebra::DVector::from_iterator(positions, projection.iter().map(|&v| f64::from(v)));
            let norm_squared = p.norm_squared();
            // X Xᵀ p = σ₁² p with σ₁² = ‖p‖².
            let residual = (&gram * &p - &p * norm_squared).norm() / (norm_squared * p.norm());
            assert!(residual < 1e-5, "{channels}×{height}×{width}: residual {residual}");
            let largest = SymmetricEigen::new(gram).eigenvalues.max();
            assert!((norm_squared - largest).abs() < 1e-4 * largest, "‖p‖² {norm_squared} vs σ₁² {largest}");
        }
    }
}
