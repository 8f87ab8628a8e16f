//! The cotangent seeded on the logits, per row: one-hot of the target class for logit
//! attribution, `softmax − one-hot` for the cross-entropy loss (each row its own loss, i.e.
//! PyTorch's `reduction="sum"` over a batch). A negative target selects the row's predicted class.

use super::{CROSS_ENTROPY_INPUT, TARGET_INPUT, emit::Emitter};
use crate::graph;

/// Emits the seed for `logits` (`[N, classes]`) and returns its name.
pub(super) fn cotangent(emit: &mut Emitter, logits: &str, classes: i64) -> String {
    let zero = emit.ints(&[], &[0]);
    let one = emit.ints(&[], &[1]);
    let predicted = emit.op("ArgMax", &[logits], vec![graph::attr_int("axis", 1), graph::attr_int("keepdims", 0)]);
    let unset = emit.op("Less", &[TARGET_INPUT, &zero], vec![]);
    let target = emit.op("Where", &[&unset, &predicted, TARGET_INPUT], vec![]);
    let depth = emit.ints(&[1], &[classes]);
    let values = emit.floats(&[2], &[0.0, 1.0]);
    let one_hot = emit.op("OneHot", &[&target, &depth, &values], vec![graph::attr_int("axis", -1)]);
    let probabilities = emit.op("Softmax", &[logits], vec![graph::attr_int("axis", 1)]);
    let residual = emit.op("Sub", &[&probabilities, &one_hot], vec![]);
    let cross_entropy = emit.op("Equal", &[CROSS_ENTROPY_INPUT, &one], vec![]);
    let cross_entropy = emit.reshape_to(&cross_entropy, &[-1, 1]);
    emit.op("Where", &[&cross_entropy, &residual, &one_hot], vec![])
}
