//! Gradients of the activations beyond ReLU (DESIGN § Reverse-mode rules): each elementwise one as
//! its local slope dy/dx, which the caller multiplies by the incoming gradient (or, in a DeepLift
//! graph, replaces by the rescale rule), and Softmax / LogSoftmax along their axis.

use explain_proto::onnx::NodeProto;

use super::{
    AugmentError,
    rules::{Rules, unsupported},
};
use crate::graph;

/// The elementwise activations [`slope`] differentiates (Pow with a constant exponent).
pub(super) const ACTIVATIONS: [&str; 8] = ["Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Gelu", "Sqrt", "Pow"];

/// dy/dx of the elementwise activation `node` (one of [`ACTIVATIONS`]), shaped like its input.
pub(super) fn slope(rules: &mut Rules<'_>, node: &NodeProto) -> Result<String, AugmentError> {
    let (x, y) = (node.input[0].as_str(), node.output[0].as_str());
    let emit = &mut rules.emit;
    let (zero, one) = (emit.scalar(0.0), emit.scalar(1.0));
    Ok(match node.op_type() {
        // σ′ = σ(1 − σ)
        "Sigmoid" => {
            let complement = emit.op("Sub", &[&one, y], vec![]);
            emit.op("Mul", &[y, &complement], vec![])
        }
        // tanh′ = 1 − tanh²
        "Tanh" => {
            let square = emit.op("Mul", &[y, y], vec![]);
            emit.op("Sub", &[&one, &square], vec![])
        }
        // y = max(0, min(1, αx + β)): α where 0 < αx + β < 1.
        "HardSigmoid" => {
            let alpha = graph::float_attribute(node, "alpha", 0.2);
            let (alpha_tensor, beta) = (emit.scalar(alpha), emit.scalar(graph::float_attribute(node, "beta", 0.5)));
            let scaled = emit.op("Mul", &[x, &alpha_tensor], vec![]);
            let t = emit.op("Add", &[&scaled, &beta], vec![]);
            let above = emit.op("Greater", &[&t, &zero], vec![]);
            let below = emit.op("Less", &[&t, &one], vec![]);
            let inside = emit.op("And", &[&above, &below], vec![]);
            emit.op("Where", &[&inside, &alpha_tensor, &zero], vec![])
        }
        // y = x · max(0, min(1, x/6 + ½)): 0 below −3, 1 above 3, x/3 + ½ between (PyTorch's).
        "HardSwish" => {
            let (third, half, three, minus_three) =
                (emit.scalar(1.0 / 3.0), emit.scalar(0.5), emit.scalar(3.0), emit.scalar(-3.0));
            let scaled = emit.op("Mul", &[x, &third], vec![]);
            let between = emit.op("Add", &[&scaled, &half], vec![]);
            let high = emit.op("Greater", &[x, &three], vec![]);
            let upper = emit.op("Where", &[&high, &one, &between], vec![]);
            let low = emit.op("Less", &[x, &minus_three], vec![]);
            emit.op("Where", &[&low, &zero, &upper], vec![])
        }
        // erf′ = 2/√π · exp(−x²)
        "Erf" => {
            let square = emit.op("Mul", &[x, x], vec![]);
            let negated = emit.op("Neg", &[&square], vec![]);
            let gaussian = emit.op("Exp", &[&negated], vec![]);
            let scale = emit.scalar(std::f32::consts::FRAC_2_SQRT_PI);
            emit.op("Mul", &[&gaussian, &scale], vec![])
        }
        // Gelu (opset 20): x · Φ(x), Φ′ = φ; or its tanh approximation.
        "Gelu" => match graph::string_attribute(node, "approximate", "none").as_str() {
            "none" => {
                let (inverse_root_two, half) = (emit.scalar(std::f32::consts::FRAC_1_SQRT_2), emit.scalar(0.5));
                let scaled = emit.op("Mul", &[x, &inverse_root_two], vec![]);
                let erf = emit.op("Erf", &[&scaled], vec![]);
                let shifted = emit.op("Add", &[&erf, &one], vec![]);
                let cdf = emit.op("Mul", &[&shifted, &half], vec![]);
                let square = emit.op("Mul", &[x, x], vec![]);
                let halved = emit.op("Mul", &[&square, &half], vec![]);
                let negated = emit.op("Neg", &[&halved], vec![]);
                let gaussian = emit.op("Exp", &[&negated], vec![]);
                let density_scale =
                    emit.scalar(0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2);
                let density = emit.op("Mul", &[&gaussian, &density_scale], vec![]);
                let tail = emit.op("Mul", &[x, &density], vec![]);
                emit.op("Add", &[&cdf, &tail], vec![])
            }
            "tanh" => {
                // u = √(2/π)(x + 0.044715x³), t = tanh(u): ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)
                let root = (2.0 / std::f32::consts::PI).sqrt();
                let (half, cubic, root_tensor) = (emit.scalar(0.5), emit.scalar(0.044_715), emit.scalar(root));
                let triple_cubic = emit.scalar(3.0 * 0.044_715);
                let square = emit.op("Mul", &[x, x], vec![]);
                let cube = emit.op("Mul", &[&square, x], vec![]);
                let weighted_cube = emit.op("Mul", &[&cube, &cubic], vec![]);
                let inner = emit.op("Add", &[x, &weighted_cube], vec![]);
                let u = emit.op("Mul", &[&inner, &root_tensor], vec![]);
                let t = emit.op("Tanh", &[&u], vec![]);
                let shifted = emit.op("Add", &[&t, &one], vec![]);
                let first = emit.op("Mul", &[&shifted, &half], vec![]);
                let t_square = emit.op("Mul", &[&t, &t], vec![]);
                let sech_square = emit.op("Sub", &[&one, &t_square], vec![]);
                let weighted_square = emit.op("Mul", &[&square, &triple_cubic], vec![]);
                let inner_slope = emit.op("Add", &[&weighted_square, &one], vec![]);
                let u_slope = emit.op("Mul", &[&inner_slope, &root_tensor], vec![]);
                let half_x = emit.op("Mul", &[x, &half], vec![]);
                let product = emit.op("Mul", &[&half_x, &sech_square], vec![]);
                let second = emit.op("Mul", &[&product, &u_slope], vec![]);
                emit.op("Add", &[&first, &second], vec![])
            }
            other => return Err(unsupported(node, &format!("approximate = {other}"))),
        },
        // √′ = 1 / (2√x)
        "Sqrt" => {
            let half = emit.scalar(0.5);
            emit.op("Div", &[&half, y], vec![])
        }
        // (x^p)′ = p · x^(p − 1)
        "Pow" => {
            let exponent = node.input[1].as_str();
            let lowered = emit.op("Sub", &[exponent, &one], vec![]);
            let power = emit.op("Pow", &[x, &lowered], vec![]);
            emit.op("Mul", &[&power, exponent], vec![])
        }
        op => return Err(AugmentError::UnsupportedOp { op: op.to_owned(), node: super::rules::node_label(node) }),
    })
}

/// Softmax: y ⊙ (g − Σ g ⊙ y); LogSoftmax: g − exp(y) ⊙ Σ g; sums along the op's axis.
pub(super) fn softmax(rules: &mut Rules<'_>, node: &NodeProto, grad: &str) -> Result<String, AugmentError> {
    let y = node.output[0].as_str();
    let rank = rules.shape(y)?.len() as i64;
    if rank == 0 {
        return Err(unsupported(node, "a scalar input"));
    }
    let axis = graph::int_attribute(node, "axis", -1).rem_euclid(rank);
    if axis == 0 {
        return Err(unsupported(node, "a softmax across the batch"));
    }
    let emit = &mut rules.emit;
    Ok(if node.op_type() == "Softmax" {
        let weighted = emit.op("Mul", &[grad, y], vec![]);
        let total = emit.reduce_sum_keepdims(&weighted, &[axis]);
        let centred = emit.op("Sub", &[grad, &total], vec![]);
        emit.op("Mul", &[y, &centred], vec![])
    } else {
        let total = emit.reduce_sum_keepdims(grad, &[axis]);
        let probabilities = emit.op("Exp", &[y], vec![]);
        let spread = emit.op("Mul", &[&probabilities, &total], vec![]);
        emit.op("Sub", &[grad, &spread], vec![])
    })
}
