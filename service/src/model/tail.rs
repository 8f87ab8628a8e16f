//! Tail graphs: the part of the forward graph after one layer, with that layer's tensor as the
//! graph's input and the logits as its output. Ablation-CAM runs a layer's activation, one channel
//! ablated per row, through the tail of that layer. A layer has a tail only when it is a cut: every
//! path from the image to the logits passes through it (a ResNet block's output is; a tensor a skip
//! connection jumps over is not).

use std::collections::HashSet;

use explain_proto::onnx::{GraphProto, ModelProto};

use crate::graph;

/// Why a layer has no tail graph.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TailError {
    /// The logits do not depend on the layer.
    #[error("the logits do not depend on `{0}`")]
    NotUpstream(String),
    /// A path from the image to the logits bypasses the layer.
    #[error("node `{node}` after `{layer}` also reads `{bypass}`, computed from the image without passing `{layer}`")]
    Bypassed {
        /// The layer's tensor.
        layer: String,
        /// The node reading around it.
        node: String,
        /// The tensor it reads.
        bypass: String,
    },
}

/// Tensors computed from the graph's input: its inputs that are not initializers, and every output
/// of a node reading one of them.
fn image_dependent(graph: &GraphProto) -> HashSet<&str> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let mut dependent: HashSet<&str> =
        graph.input.iter().map(|input| input.name()).filter(|name| !initializers.contains(name)).collect();
    for node in &graph.node {
        if node.input.iter().any(|input| dependent.contains(input.as_str())) {
            dependent.extend(node.output.iter().map(String::as_str));
        }
    }
    dependent
}

/// Which nodes of `graph` its tail after the tensor `layer` holds: those after the layer, and those
/// computing the constants (shapes, `Constant`s) they read.
pub(crate) fn tail_nodes(graph: &GraphProto, layer: &str, logits: &str) -> Result<Vec<bool>, TailError> {
    let dependent = image_dependent(graph);
    // Nodes after the layer, in graph (topological) order.
    let mut after: HashSet<&str> = HashSet::from([layer]);
    let mut in_tail = vec![false; graph.node.len()];
    for (index, node) in graph.node.iter().enumerate() {
        if node.input.iter().any(|input| after.contains(input.as_str())) {
            in_tail[index] = true;
            after.extend(node.output.iter().map(String::as_str));
        }
    }
    if !after.contains(logits) {
        return Err(TailError::NotUpstream(layer.to_owned()));
    }
    // Every other image-dependent input of the tail is a bypass; constant inputs made by nodes
    // before the layer are computed again in the tail.
    let nodes = graph::GraphIndex::new(graph);
    let mut wanted: Vec<usize> = Vec::new();
    for node in graph.node.iter().zip(&in_tail).filter(|(_, tail)| **tail).map(|(node, _)| node) {
        for input in node.input.iter().filter(|input| !input.is_empty() && !after.contains(input.as_str())) {
            if dependent.contains(input.as_str()) {
                return Err(TailError::Bypassed {
                    layer: layer.to_owned(),
                    node: node.name().to_owned(),
                    bypass: input.clone(),
                });
            }
            wanted.extend(nodes.producer(input));
        }
    }
    while let Some(index) = wanted.pop() {
        if !in_tail[index] {
            in_tail[index] = true;
            wanted.extend(graph.node[index].input.iter().filter_map(|input| nodes.producer(input)));
        }
    }
    Ok(in_tail)
}

/// The tail of `model` after the tensor `layer`: input `layer` (`[batch, C, h, w]` with `shape` =
/// `[C, h, w]`), output `logits`; initializers only where its nodes read them.
pub(crate) fn tail(model: &ModelProto, layer: &str, shape: &[i64], logits: &str) -> Result<ModelProto, TailError> {
    let empty = GraphProto::default();
    let graph = model.graph.as_ref().unwrap_or(&empty);
    let in_tail = tail_nodes(graph, layer, logits)?;
    let node: Vec<_> =
        graph.node.iter().zip(&in_tail).filter(|(_, keep)| **keep).map(|(node, _)| node.clone()).collect();
    let read: HashSet<&str> = node.iter().flat_map(|node| node.input.iter().map(String::as_str)).collect();
    let dims: Vec<Option<i64>> = std::iter::once(None).chain(shape.iter().copied().map(Some)).collect();
    let tail_graph = GraphProto {
        name: Some(format!("tail after {layer}")),
        input: vec![graph::tensor_value(layer, explain_proto::onnx::tensor_proto::DataType::Float, Some(&dims))],
        output: vec![graph::float_value(logits)],
        initializer: graph.initializer.iter().filter(|t| read.contains(t.name())).cloned().collect(),
        node,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        functions: model.functions.clone(),
        graph: Some(tail_graph),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::node;

    /// image → a → b, and logits = b + c; `c` is computed from `a` (`skip`) or from the image
    /// (`bypass`), and `b` reads the shape of a constant.
    fn model(bypass: bool) -> ModelProto {
        let c_from = if bypass { "image" } else { "a" };
        let graph = GraphProto {
            input: vec![graph::float_value("image")],
            output: vec![graph::float_value("logits")],
            initializer: vec![graph::float_tensor("w", &[1], &[2.0]), graph::float_tensor("unused", &[1], &[0.0])],
            node: vec![
                node("Relu", "first", &["image"], &["a"], vec![]),
                node("Constant", "constant", &[], &["k"], vec![]),
                node("Shape", "shape", &["k"], &["k_shape"], vec![]),
                node("Mul", "scale", &["a", "w"], &["b"], vec![]),
                node("Reshape", "reshape", &["b", "k_shape"], &["b2"], vec![]),
                node("Neg", "skip", &[c_from], &["c"], vec![]),
                node("Add", "join", &["b2", "c"], &["logits"], vec![]),
            ],
            ..Default::default()
        };
        ModelProto { graph: Some(graph), ..Default::default() }
    }

    #[test]
    fn the_tail_after_a_cut_keeps_what_it_reads() {
        let tail = tail(&model(false), "a", &[4, 2, 2], "logits").unwrap();
        let graph = tail.graph.unwrap();
        let names: Vec<_> = graph.node.iter().map(|node| node.name()).collect();
        assert_eq!(names, ["constant", "shape", "scale", "reshape", "skip", "join"]);
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name(), "a");
        assert_eq!(graph::dims(&graph.input[0]), Some(vec![None, Some(4), Some(2), Some(2)]));
        assert_eq!(graph.initializer.iter().map(|t| t.name()).collect::<Vec<_>>(), ["w"]);
    }

    #[test]
    fn a_layer_that_a_path_bypasses_or_that_the_logits_ignore_has_no_tail() {
        let mut graph = model(true).graph.unwrap();
        let error = tail_nodes(&graph, "a", "logits").unwrap_err();
        assert_eq!(error, TailError::Bypassed { layer: "a".into(), node: "join".into(), bypass: "c".into() });
        let error = tail_nodes(&graph, "c", "logits").unwrap_err();
        assert_eq!(error, TailError::Bypassed { layer: "c".into(), node: "join".into(), bypass: "b2".into() });
        graph.node.push(node("Neg", "dangling", &["image"], &["d"], vec![]));
        assert_eq!(tail_nodes(&graph, "d", "logits").unwrap_err(), TailError::NotUpstream("d".into()));
    }
}
