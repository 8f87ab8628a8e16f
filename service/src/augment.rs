//! The reverse-mode augmenter: turns a forward ONNX graph into one that also computes the analytic
//! backward pass from ordinary ONNX ops, so a single ONNX Runtime run yields activations and the
//! gradients of the input and of every named layer.
//!
//! The augmented graph takes three int64 `[N]` inputs besides the image: [`TARGET_INPUT`] (the
//! class per row; negative means the row's predicted class), [`CROSS_ENTROPY_INPUT`] (1: the
//! objective is the row's cross-entropy loss, `softmax − one-hot` on the logits; 0: the target
//! logit, `one-hot`) and [`GUIDED_INPUT`] (1: ReLUs also drop negative gradients, guided
//! backpropagation). Gradients come out as `grad/<tensor>` ([`gradient_name`]).
//!
//! A DeepLift graph ([`Backward::DeepLift`]) has the same inputs and outputs; its batch holds
//! pairs of rows (an input, then its reference) and its nonlinearities use DeepLift's rescale rule
//! instead of their gradients (`deep_lift.rs`), so an input row's "gradient" is DeepLift's
//! multiplier.

mod deep_lift;
mod elementwise;
mod emit;
mod fold;
mod layout;
mod normalization;
mod resize;
mod rules;
mod seed;
mod spatial;

use std::collections::{HashMap, HashSet};

use explain_proto::onnx::{ModelProto, tensor_proto::DataType};

use self::{deep_lift::Pairs, emit::Emitter, rules::Rules};
use crate::graph;

/// Per-row target class input.
pub const TARGET_INPUT: &str = "explain.target";
/// Per-row objective input: 1 for cross-entropy, 0 for the target logit.
pub const CROSS_ENTROPY_INPUT: &str = "explain.cross_entropy";
/// Per-row guided-backpropagation input: 1 for guided.
pub const GUIDED_INPUT: &str = "explain.guided";
/// Version of the augmenter's output, part of the cache key of augmented graphs.
pub const VERSION: u32 = 2;

/// The graph output holding the gradient of `tensor`.
pub fn gradient_name(tensor: &str) -> String {
    format!("grad/{tensor}")
}

/// Tensor shapes at batch 1 (node outputs and initializers), measured by running the model.
pub type Shapes = HashMap<String, Vec<i64>>;

/// What the backward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backward {
    /// Gradients (guided on rows flagged guided).
    Gradient,
    /// DeepLift's multipliers on rows paired input, reference, input, reference, …
    DeepLift,
}

/// What to differentiate.
#[derive(Clone, Copy, Debug)]
pub struct AugmentSpec<'a> {
    /// Where the backward pass ends: the image input, or a layer tensor for a cheaper graph that
    /// only differentiates what comes after it. Its gradient is an output.
    pub from: &'a str,
    /// The logits.
    pub logits: &'a str,
    /// Tensors whose gradients become graph outputs, those after `from`.
    pub layers: &'a [String],
    /// Gradients or DeepLift's multipliers.
    pub backward: Backward,
}

/// Why a graph cannot be differentiated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AugmentError {
    /// An op on the path from the input to the logits has no gradient rule.
    #[error(
        "unsupported op `{op}` (node {node}) between the input and the logits; ops with gradients: {}",
        rules::SUPPORTED_OPS
    )]
    UnsupportedOp {
        /// The op type.
        op: String,
        /// The node's name (or the tensor it produces).
        node: String,
    },
    /// A supported op is used in a way the rules do not cover.
    #[error("unsupported use of `{op}` (node {node}): {reason}")]
    Unsupported {
        /// The op type.
        op: String,
        /// The node's name (or the tensor it produces).
        node: String,
        /// What is not covered.
        reason: String,
    },
    /// The model's opset is too old.
    #[error("the model imports ONNX opset {found}; gradients need opset {needed} or later")]
    Opset {
        /// The model's opset.
        found: i64,
        /// The opset needed.
        needed: i64,
    },
    /// A tensor's shape was not measured.
    #[error("no shape is known for tensor `{0}`")]
    MissingShape(String),
    /// The logits do not depend on the input.
    #[error("the logits `{0}` do not depend on the input")]
    Disconnected(String),
}

/// The tensors that carry gradients: those that depend on `input` ([`graph::depends_on`]: a
/// tensor's shape carries none) and that `logits` depend on.
fn gradient_path(graph: &explain_proto::onnx::GraphProto, input: &str, logits: &str) -> HashSet<String> {
    let depends = graph::depends_on(graph, input);
    let mut reaches = HashSet::from([logits.to_owned()]);
    for node in graph.node.iter().rev() {
        if node.output.iter().any(|t| reaches.contains(t)) {
            reaches.extend(node.input.iter().filter(|t| depends.contains(*t)).cloned());
        }
    }
    depends.intersection(&reaches).cloned().collect()
}

/// Gradient contributions per tensor, summed once all have arrived.
struct Gradients {
    parts: HashMap<String, Vec<String>>,
    totals: HashMap<String, String>,
    /// Tensors whose total becomes a graph output, under [`gradient_name`].
    exported: HashSet<String>,
}

impl Gradients {
    fn add(&mut self, tensor: &str, part: String) {
        self.parts.entry(tensor.to_owned()).or_default().push(part);
    }

    /// The total gradient of `tensor`; every consumer must have contributed already.
    fn total(&mut self, emit: &mut Emitter, tensor: &str) -> Option<String> {
        if let Some(total) = self.totals.get(tensor) {
            return Some(total.clone());
        }
        let parts = self.parts.remove(tensor)?;
        let total = match (parts.as_slice(), self.exported.contains(tensor)) {
            ([only], false) => only.clone(),
            (_, exported) => {
                let name = if exported { gradient_name(tensor) } else { emit.fresh("grad_sum") };
                let inputs: Vec<&str> = parts.iter().map(String::as_str).collect();
                emit.op_into(if parts.len() == 1 { "Identity" } else { "Sum" }, &inputs, &name, vec![]);
                name
            }
        };
        self.totals.insert(tensor.to_owned(), total.clone());
        Some(total)
    }
}

/// Builds the forward + backward graph of `model` (a forward graph whose outputs are the logits
/// and the layers). `shapes` are the model's tensor shapes at batch 1.
pub fn augment(model: &ModelProto, spec: &AugmentSpec<'_>, shapes: &Shapes) -> Result<ModelProto, AugmentError> {
    let opset = graph::opset(model);
    if opset < 13 {
        return Err(AugmentError::Opset { found: opset, needed: 13 });
    }
    let Some(graph) = model.graph.as_ref() else { return Err(AugmentError::Disconnected(spec.logits.to_owned())) };
    let path = gradient_path(graph, spec.from, spec.logits);
    if !path.contains(spec.logits) {
        return Err(AugmentError::Disconnected(spec.logits.to_owned()));
    }
    let classes = *shapes
        .get(spec.logits)
        .and_then(|s| s.get(1))
        .ok_or_else(|| AugmentError::MissingShape(spec.logits.to_owned()))?;

    let mut emit = Emitter::new();
    let seed = seed::cotangent(&mut emit, spec.logits, classes);
    let one = emit.ints(&[], &[1]);
    let guided = emit.op("Equal", &[GUIDED_INPUT, &one], vec![]);
    let (zero, unbounded) = (emit.scalar(0.0), emit.scalar(f32::NEG_INFINITY));
    let guided_floor = emit.op("Where", &[&guided, &zero, &unbounded], vec![]);
    let pairs = (spec.backward == Backward::DeepLift).then(|| Pairs::emit(&mut emit));
    let mut rules = Rules::new(emit, graph, shapes, guided_floor, pairs);

    // MaxPool's gradient needs the positions of the maxima: give each pool on the path its Indices.
    let mut augmented = model.clone();
    let forward = augmented.graph.as_mut().expect("the clone has the graph");
    for node in forward
        .node
        .iter_mut()
        .filter(|n| n.op_type() == "MaxPool" && n.output.first().is_some_and(|output| path.contains(output)))
    {
        if opset < 16 {
            return Err(AugmentError::Opset { found: opset, needed: 16 });
        }
        if node.output.get(1).is_none_or(String::is_empty) {
            node.output.resize(1, String::new());
            node.output.push(format!("{}/indices", node.output[0]));
        }
        rules.pool_indices.insert(node.output[0].clone(), node.output[1].clone());
    }

    let exported: HashSet<String> =
        spec.layers.iter().chain([&spec.from.to_owned()]).filter(|t| path.contains(*t)).cloned().collect();
    let mut gradients = Gradients { parts: HashMap::new(), totals: HashMap::new(), exported: exported.clone() };
    gradients.add(spec.logits, seed);
    for node in graph.node.iter().rev() {
        if !node.output.iter().any(|t| path.contains(t)) {
            continue;
        }
        let contributions = if node.op_type() == "Split" {
            let grads: Vec<Option<String>> =
                node.output.iter().map(|output| gradients.total(&mut rules.emit, output)).collect();
            vec![(0, rules.split(node, &grads, &|t| path.contains(t))?)]
        } else {
            let grad = gradients
                .total(&mut rules.emit, &node.output[0])
                .ok_or_else(|| rules::unsupported(node, "its gradient flows through an output other than the first"))?;
            rules.backward(node, &grad, &|t| path.contains(t))?
        };
        for (position, part) in contributions {
            gradients.add(&node.input[position], part);
        }
    }

    for tensor in std::iter::once(spec.from).chain(spec.layers.iter().map(String::as_str)) {
        if !exported.contains(tensor) {
            continue;
        }
        gradients.total(&mut rules.emit, tensor).ok_or_else(|| AugmentError::Disconnected(tensor.to_owned()))?;
        forward.output.push(graph::float_value(&gradient_name(tensor)));
    }
    for name in [TARGET_INPUT, CROSS_ENTROPY_INPUT, GUIDED_INPUT] {
        forward.input.push(graph::tensor_value(name, DataType::Int64, Some(&[None])));
    }
    forward.node.append(&mut rules.emit.nodes);
    forward.initializer.append(&mut rules.emit.initializers);
    Ok(augmented)
}
