//! The gradient of LayerNormalization (opset 17): y = x̂ · γ + β with x̂ = (x − μ) / σ over the
//! axes from `axis` on. With ĝ = g · γ, the input's gradient is (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) / σ;
//! μ, σ and x̂ are computed again from x.

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError,
    rules::{Rules, unsupported},
};
use crate::graph;

/// LayerNormalization's input gradient.
pub(super) fn layer_norm(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let x = node.input[0].as_str();
    let shape = rules.shape(x)?.to_vec();
    let rank = shape.len() as i64;
    let axis = graph::int_attribute(node, "axis", -1);
    if !(-rank..rank).contains(&axis) || axis.rem_euclid(rank) == 0 {
        return Err(unsupported(node, &format!("axis {axis} (the batch, or none of a rank-{rank} input)")));
    }
    let axes: Vec<i64> = (axis.rem_euclid(rank)..rank).collect();
    let count: i64 = axes.iter().map(|&a| shape[a as usize]).product();
    if count <= 0 {
        return Err(unsupported(node, "an empty normalised axis"));
    }
    let epsilon = graph::float_attribute(node, "epsilon", 1e-5);
    let emit = &mut rules.emit;
    let scale = emit.scalar(1.0 / count as f32);
    let mean = |emit: &mut super::emit::Emitter, tensor: &str| {
        let total = emit.reduce_sum_keepdims(tensor, &axes);
        emit.op("Mul", &[&total, &scale], vec![])
    };
    let centre = mean(emit, x);
    let centred = emit.op("Sub", &[x, &centre], vec![]);
    let square = emit.op("Mul", &[&centred, &centred], vec![]);
    let variance = mean(emit, &square);
    let epsilon = emit.scalar(epsilon);
    let widened = emit.op("Add", &[&variance, &epsilon], vec![]);
    let deviation = emit.op("Sqrt", &[&widened], vec![]);
    let normalised = emit.op("Div", &[&centred, &deviation], vec![]);
    let scaled = emit.op("Mul", &[grad, &node.input[1]], vec![]);
    let mean_scaled = mean(emit, &scaled);
    let product = emit.op("Mul", &[&scaled, &normalised], vec![]);
    let mean_product = mean(emit, &product);
    let along = emit.op("Mul", &[&normalised, &mean_product], vec![]);
    let less_mean = emit.op("Sub", &[&scaled, &mean_scaled], vec![]);
    let projected = emit.op("Sub", &[&less_mean, &along], vec![]);
    Ok(emit.op("Div", &[&projected, &deviation], vec![]))
}
