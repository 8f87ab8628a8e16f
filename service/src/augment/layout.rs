//! Gradients of the ops that move values without changing them: Transpose (the inverse
//! permutation), Slice (the gradient padded back with zeros), Split (the outputs' gradients
//! concatenated, zeros for an output that has none) and Gather (the gradient scatter-added back to
//! the gathered positions). None may move the batch axis.

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError, fold,
    rules::{Rules, unsupported},
};
use crate::graph;

/// Transpose: the gradient transposed back.
pub(super) fn transpose(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let rank = rules.shape(&node.input[0])?.len();
    let perm = match graph::ints_attribute(node, "perm") {
        perm if perm.is_empty() => (0..rank as i64).rev().collect(),
        perm => perm,
    };
    let mut inverse = vec![0_i64; rank];
    let mut seen = vec![false; rank];
    for (position, &axis) in perm.iter().enumerate() {
        match usize::try_from(axis).ok().filter(|&a| a < rank && !seen[a]) {
            Some(a) => (inverse[a], seen[a]) = (position as i64, true),
            None => return Err(unsupported(node, &format!("perm {perm:?} is not a permutation of {rank} axes"))),
        }
    }
    if perm.len() != rank || perm.first() != Some(&0) {
        return Err(unsupported(node, &format!("perm {perm:?} moves the batch axis")));
    }
    Ok(rules.emit.op("Transpose", &[grad], vec![graph::attr_ints("perm", &inverse)]))
}

/// Slice with starts, ends and axes that are constant or follow from the input's size (not its
/// batch size), and steps of 1: the gradient padded with zeros to the input's shape.
pub(super) fn slice(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let input = rules.shape(&node.input[0])?.to_vec();
    let rank = input.len() as i64;
    let constant = |position: usize| -> Result<Option<Vec<i64>>, AugmentError> {
        match node.input.get(position).filter(|name| !name.is_empty()) {
            None => Ok(None),
            Some(name) => fold::int64s(rules.graph, rules.shapes, name)
                .map(Some)
                .ok_or_else(|| unsupported(node, &format!("`{name}` is neither constant nor set by the input's size"))),
        }
    };
    let (Some(starts), Some(ends)) = (constant(1)?, constant(2)?) else {
        return Err(unsupported(node, "no starts or ends (opset 10 or later has them as inputs)"));
    };
    let axes = constant(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = constant(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || ends.len() != starts.len() || steps.len() != starts.len() {
        return Err(unsupported(node, "starts, ends, axes and steps of different lengths"));
    }
    if steps.iter().any(|&step| step != 1) {
        return Err(unsupported(node, &format!("steps {steps:?} (only 1 is differentiated)")));
    }
    let mut pads = vec![0_i64; 2 * input.len()];
    for ((&start, &end), &axis) in starts.iter().zip(&ends).zip(&axes) {
        if !(-rank..rank).contains(&axis) {
            return Err(unsupported(node, &format!("axis {axis} of a rank-{rank} input")));
        }
        let axis = axis.rem_euclid(rank) as usize;
        let size = input[axis];
        let clamp = |index: i64| if index < 0 { (index.saturating_add(size)).max(0) } else { index.min(size) };
        let (start, end) = (clamp(start), clamp(end));
        if axis == 0 && (start, end) != (0, size) {
            return Err(unsupported(node, "a slice of the batch"));
        }
        if end <= start {
            return Err(unsupported(node, "an empty slice"));
        }
        (pads[axis], pads[input.len() + axis]) = (start, size - end);
    }
    let pads = rules.emit.ints(&[pads.len() as i64], &pads);
    Ok(rules.emit.op("Pad", &[grad, &pads], vec![]))
}

/// Gather of image-dependent data at indices that do not depend on it: the gradient, laid out as
/// the data with the gathered axis flattened to the indices, scatter-added at them (an index
/// gathered twice receives both). Indices are read at run time; negative ones count from the end.
pub(super) fn gather(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let (data, indices) = (node.input[0].as_str(), node.input[1].as_str());
    let rank = rules.shape(data)?.len() as i64;
    let axis = graph::int_attribute(node, "axis", 0);
    // Axis 0 is the batch, except of a tensor flattened whole (the dynamo exporter's `as_strided`).
    if !(-rank..rank).contains(&axis) || (axis.rem_euclid(rank) == 0 && rank > 1) {
        return Err(unsupported(node, &format!("axis {axis} (the batch, or none of a rank-{rank} input)")));
    }
    let axis = axis.rem_euclid(rank);
    let emit = &mut rules.emit;
    // The indices as one list, made non-negative.
    let flat = emit.reshape_to(indices, &[-1]);
    let shape = emit.op("Shape", &[data], vec![]);
    let position = emit.ints(&[1], &[axis]);
    let size = emit.op("Gather", &[&shape, &position], vec![graph::attr_int("axis", 0)]);
    let zero = emit.ints(&[], &[0]);
    let negative = emit.op("Less", &[&flat, &zero], vec![]);
    let wrapped = emit.op("Add", &[&flat, &size], vec![]);
    let flat = emit.op("Where", &[&negative, &wrapped, &flat], vec![]);
    // The gradient shaped as the data with the axis replaced by the list of indices.
    let (start, before, after, end) =
        (emit.ints(&[1], &[0]), emit.ints(&[1], &[axis]), emit.ints(&[1], &[axis + 1]), emit.ints(&[1], &[rank]));
    let leading = emit.op("Slice", &[&shape, &start, &before], vec![]);
    let trailing = emit.op("Slice", &[&shape, &after, &end], vec![]);
    let unknown = emit.ints(&[1], &[-1]);
    let target = emit.op("Concat", &[&leading, &unknown, &trailing], vec![graph::attr_int("axis", 0)]);
    let laid_out = emit.op("Reshape", &[grad, &target], vec![]);
    // The indices along the axis, broadcast over the other axes.
    let mut along = vec![1_i64; rank as usize];
    along[axis as usize] = -1;
    let along = emit.reshape_to(&flat, &along);
    let spread = emit.op("Shape", &[&laid_out], vec![]);
    let spread = emit.op("Expand", &[&along, &spread], vec![]);
    let zeros = emit.op("ConstantOfShape", &[&shape], vec![]);
    let attributes = vec![graph::attr_int("axis", axis), graph::attr_string("reduction", "add")];
    Ok(emit.op("ScatterElements", &[&zeros, &spread, &laid_out], attributes))
}

/// Split: the gradients of its outputs (`None`: the output takes no part in the objective)
/// concatenated along its axis.
pub(super) fn split(rules: &mut Rules<'_>, node: &NodeProto, grads: &[Option<String>]) -> Result<String, AugmentError> {
    let rank = rules.shape(&node.input[0])?.len() as i64;
    let axis = graph::int_attribute(node, "axis", 0);
    if !(-rank..rank).contains(&axis) || axis.rem_euclid(rank) == 0 {
        return Err(unsupported(node, &format!("axis {axis} (the batch, or none of a rank-{rank} input)")));
    }
    let mut parts = Vec::with_capacity(grads.len());
    for (output, grad) in node.output.iter().zip(grads) {
        parts.push(match grad {
            Some(grad) => grad.clone(),
            None => {
                let shape = rules.emit.op("Shape", &[output], vec![]);
                rules.emit.op("ConstantOfShape", &[&shape], vec![])
            }
        });
    }
    let inputs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(rules.emit.op("Concat", &inputs, vec![graph::attr_int("axis", axis.rem_euclid(rank))]))
}
