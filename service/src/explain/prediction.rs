//! Predictions from logits: softmax (in float64, shifted by the maximum) and the top-k classes.

use ndarray::ArrayView1;

use super::job::{Objective, TargetClass};

/// A class and the model's scores for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScore {
    /// Class index.
    pub index: usize,
    /// Softmax probability.
    pub probability: f32,
    /// Logit.
    pub logit: f32,
}

/// The model's prediction for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Top classes, best first.
    pub top_classes: Vec<ClassScore>,
    /// The class explained, with its scores.
    pub target: ClassScore,
    /// The objective explained.
    pub objective: Objective,
}

/// Softmax of `logits`.
pub(super) fn softmax(logits: ArrayView1<'_, f32>) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The softmax probability of class `target` among `logits`, in float64.
pub(super) fn probability(logits: ArrayView1<'_, f32>, target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&logit| f64::from(logit - max).exp()).sum();
    f64::from(logits[target] - max).exp() / total
}

/// The prediction for one row of logits: the `top_k` best classes and the target's scores.
pub(super) fn predict(
    logits: ArrayView1<'_, f32>,
    top_k: usize,
    target: TargetClass,
    objective: Objective,
) -> Prediction {
    let probabilities = softmax(logits);
    let score = |index: usize| ClassScore { index, probability: probabilities[index], logit: logits[index] };
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Stable sort: ties keep the lower index first, as argmax does.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let target = match target {
        TargetClass::Predicted => order[0],
        TargetClass::Index(index) => index,
    };
    Prediction {
        top_classes: order.iter().take(top_k.max(1)).map(|&i| score(i)).collect(),
        target: score(target),
        objective,
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(array![1000.0_f32, 1000.0, 0.0].view());
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
    }

    #[test]
    fn top_k_is_sorted_and_target_defaults_to_the_best_class() {
        let logits = array![0.5_f32, 3.0, -1.0, 2.0];
        let prediction = predict(logits.view(), 2, TargetClass::Predicted, Objective::Logit);
        let top: Vec<usize> = prediction.top_classes.iter().map(|c| c.index).collect();
        assert_eq!(top, [1, 3]);
        assert_eq!(prediction.target.index, 1);
        let explicit = predict(logits.view(), 10, TargetClass::Index(2), Objective::CrossEntropy);
        assert_eq!(explicit.top_classes.len(), 4);
        assert_eq!(explicit.target.index, 2);
        assert_eq!(explicit.target.logit, -1.0);
    }
}
