//! Spearman's rank correlation, for comparing the maps of a trained model and of its randomised
//! copies (Adebayo et al. 2018).

use std::cmp::Ordering;

use crate::FidelityError;

/// Ranks from 1, ties sharing their average rank (as `scipy.stats.rankdata`'s default).
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].partial_cmp(&values[b]).unwrap_or(Ordering::Equal));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = average;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation of two equally long series (Pearson's correlation of their
/// average ranks, as `scipy.stats.spearmanr`); `None` when either is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> Result<Option<f64>, FidelityError> {
    if a.len() != b.len() {
        return Err(FidelityError::Mismatch { map: (a.len(), 1), mask: (b.len(), 1) });
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (mean_a, mean_b) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut covariance, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        covariance += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a) * (x - mean_a);
        var_b += (y - mean_b) * (y - mean_b);
    }
    if var_a == 0.0 || var_b == 0.0 {
        return Ok(None);
    }
    Ok(Some(covariance / (var_a * var_b).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_series_correlate_perfectly() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 300.0]).unwrap().unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap().unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_take_their_average_rank_as_scipy_does() {
        // scipy.stats.spearmanr([1, 2, 2, 3, 5], [2, 1, 4, 4, 3]).statistic == 0.3947368421052632
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[2.0, 1.0, 4.0, 4.0, 3.0]).unwrap().unwrap();
        assert!((rho - 0.394_736_842_105_263_2).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn a_constant_series_has_no_correlation() {
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).unwrap(), None);
        assert!(spearman(&[1.0], &[1.0, 2.0]).is_err());
    }
}
