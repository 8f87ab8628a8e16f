//! Names the layers of a classifier graph from its structure (DESIGN § Layer contract).
//!
//! A ResNet is recognised by its stem (Conv → [BatchNormalization] → Relu → MaxPool), then its
//! residual blocks (… → Add → Relu, the Add's other operand being the block input or a projection
//! Conv of it) and its head (GlobalAveragePool or ReduceMean → Flatten or Reshape → Gemm). The
//! names are `conv1`, `maxpool`, `layerX.Y`, `avgpool`; a new stage starts at each block with a
//! projection shortcut. Node names are never used: exporters number them arbitrarily. Where an
//! exporter kept torchvision's weight names (`layer2.1.conv1.weight`), they are cross-checked.
//! A graph that is not a ResNet is still served, its layers named by the PyTorch modules the
//! exporter recorded (`modules.rs`), else by their output tensors.

use explain_proto::onnx::{GraphProto, NodeProto};

use super::modules;
use crate::graph::{self, GraphIndex};

/// How the layer names were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// The graph matched the ResNet pattern: the layer contract's names.
    ResNet,
    /// Layers are named by their output tensors.
    TensorNames,
    /// Layers are named by the PyTorch module that computes them (`features.3`), as the exporter
    /// recorded it.
    ModulePaths,
}

/// A named layer: the name callers use and the graph tensor it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedLayer {
    /// Name in requests (`layer2.1`, or a tensor name for non-ResNet graphs).
    pub name: String,
    /// The graph tensor holding the layer's output.
    pub tensor: String,
}

/// The layers of a graph, in graph order, and how they were named.
#[derive(Clone, Debug)]
pub struct LayerMap {
    /// Named layers in graph order.
    pub layers: Vec<NamedLayer>,
    /// How they were named.
    pub naming: Naming,
}

/// Names the layers of `graph`, whose data input is `input` and whose logits are `logits`.
pub(crate) fn name_layers(graph: &GraphProto, input: &str, logits: &str) -> LayerMap {
    let index = GraphIndex::new(graph);
    match resnet_layers(graph, &index, input, logits) {
        Some(layers) => {
            cross_check_weight_names(graph, &index, &layers);
            LayerMap { layers, naming: Naming::ResNet }
        }
        None => match modules::module_named_layers(graph, input, logits, &|node| LAYER_OPS.contains(&op(node))) {
            Some(layers) => LayerMap { layers, naming: Naming::ModulePaths },
            None => {
                tracing::warn!(
                    "the graph is not a ResNet and records no PyTorch modules; layers are named by their output tensors"
                );
                LayerMap { layers: tensor_named_layers(graph, logits), naming: Naming::TensorNames }
            }
        },
    }
}

fn op(node: &NodeProto) -> &str {
    node.op_type()
}

/// A node's first output, if it has one (a malformed graph may not).
fn out(node: &NodeProto) -> Option<String> {
    node.output.first().filter(|name| !name.is_empty()).cloned()
}

/// The single consumer of `tensor`, if exactly one node reads it.
fn only_consumer<'g>(graph: &'g GraphProto, index: &GraphIndex, tensor: &str) -> Option<&'g NodeProto> {
    match index.consumers(tensor) {
        [one] => graph.node.get(*one),
        _ => None,
    }
}

/// The output of `conv`, or of the BatchNormalization that alone follows it.
fn conv_bn_output(graph: &GraphProto, index: &GraphIndex, conv: &NodeProto) -> Option<String> {
    let conv_out = out(conv)?;
    match only_consumer(graph, index, &conv_out) {
        Some(bn) if op(bn) == "BatchNormalization" => out(bn),
        Some(_) | None => Some(conv_out),
    }
}

/// Whether `tensor` is `Conv(from)` or `BatchNormalization(Conv(from))`.
fn is_projection_of(graph: &GraphProto, index: &GraphIndex, tensor: &str, from: &str) -> bool {
    let Some(node) = index.producer(tensor).map(|i| &graph.node[i]) else { return false };
    let conv = if op(node) == "BatchNormalization" {
        match node.input.first().and_then(|t| index.producer(t)).map(|i| &graph.node[i]) {
            Some(conv) => conv,
            None => return false,
        }
    } else {
        node
    };
    op(conv) == "Conv" && conv.input.first().is_some_and(|t| t == from)
}

/// Whether walking back from `tensor` along first inputs through Conv, BatchNormalization and
/// Relu nodes reaches `from` (the residual branch of a block).
fn residual_reaches(graph: &GraphProto, index: &GraphIndex, tensor: &str, from: &str) -> bool {
    let mut current = tensor.to_owned();
    for _ in 0..16 {
        if current == from {
            return true;
        }
        let Some(node) = index.producer(&current).map(|i| &graph.node[i]) else { return false };
        if !matches!(op(node), "Conv" | "BatchNormalization" | "Relu") {
            return false;
        }
        let Some(next) = node.input.first() else { return false };
        current = next.clone();
    }
    false
}

fn resnet_layers(graph: &GraphProto, index: &GraphIndex, input: &str, logits: &str) -> Option<Vec<NamedLayer>> {
    // Stem: Conv → [BN] → Relu → MaxPool.
    let stem_conv = only_consumer(graph, index, input).filter(|n| op(n) == "Conv")?;
    let stem = conv_bn_output(graph, index, stem_conv)?;
    let relu = only_consumer(graph, index, &stem).filter(|n| op(n) == "Relu")?;
    let conv1 = out(relu)?;
    let maxpool = out(only_consumer(graph, index, &conv1).filter(|n| op(n) == "MaxPool")?)?;
    let mut layers = vec![
        NamedLayer { name: "conv1".into(), tensor: conv1 },
        NamedLayer { name: "maxpool".into(), tensor: maxpool.clone() },
    ];

    // Residual blocks, each ending in Add → Relu, in graph order; each must read the previous
    // block's output on both branches.
    let block_ends = graph.node.iter().filter(|n| {
        op(n) == "Add"
            && out(n).and_then(|sum| only_consumer(graph, index, &sum)).is_some_and(|relu| op(relu) == "Relu")
    });
    let mut block_input = maxpool;
    let (mut stage, mut block) = (1_usize, 0_usize);
    for add in block_ends {
        let [a, b] = add.input.as_slice() else { return None };
        let identity = a == &block_input || b == &block_input;
        let projection =
            is_projection_of(graph, index, a, &block_input) || is_projection_of(graph, index, b, &block_input);
        let both_reach =
            residual_reaches(graph, index, a, &block_input) && residual_reaches(graph, index, b, &block_input);
        if !(identity || projection) || !both_reach {
            return None;
        }
        if projection && layers.len() > 2 {
            stage += 1;
            block = 0;
        }
        let output = out(only_consumer(graph, index, &out(add)?)?)?;
        layers.push(NamedLayer { name: format!("layer{stage}.{block}"), tensor: output.clone() });
        block += 1;
        block_input = output;
    }
    if layers.len() == 2 {
        return None;
    }

    // Head: global average pool → flatten → fully connected → logits.
    let pool = index.consumers(&block_input).iter().map(|&i| &graph.node[i]).find(|n| is_global_pool(graph, n))?;
    let flat = only_consumer(graph, index, &out(pool)?).filter(|n| matches!(op(n), "Flatten" | "Reshape"))?;
    let avgpool = out(flat)?;
    let fc = only_consumer(graph, index, &avgpool).filter(|n| matches!(op(n), "Gemm" | "MatMul"))?;
    let fc_out = if op(fc) == "MatMul" {
        out(only_consumer(graph, index, &out(fc)?).filter(|n| op(n) == "Add")?)?
    } else {
        out(fc)?
    };
    if fc_out != logits {
        return None;
    }
    layers.push(NamedLayer { name: "avgpool".into(), tensor: avgpool });
    Some(layers)
}

/// GlobalAveragePool, or ReduceMean over the two spatial axes with kept dimensions.
fn is_global_pool(graph: &GraphProto, node: &NodeProto) -> bool {
    match op(node) {
        "GlobalAveragePool" => true,
        "ReduceMean" => {
            let axes = match node.input.get(1) {
                Some(name) => graph.initializer.iter().find(|t| t.name() == name).map(graph::int64_values),
                None => Some(graph::ints_attribute(node, "axes")),
            };
            let mut axes = axes.unwrap_or_default();
            axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + 4 } else { *a });
            axes.sort_unstable();
            axes == [2, 3] && graph::int_attribute(node, "keepdims", 1) == 1
        }
        _ => false,
    }
}

/// Compares structural names with torchvision weight names where the exporter kept them
/// (`layer2.1.conv1.weight` feeding the first Conv of block `layer2.1`). A disagreement means the
/// structure was misread; it is logged loudly, the structural names stay.
fn cross_check_weight_names(graph: &GraphProto, index: &GraphIndex, layers: &[NamedLayer]) {
    let mut checked = 0;
    for pair in layers.windows(2) {
        let (previous, layer) = (&pair[0], &pair[1]);
        if !layer.name.starts_with("layer") {
            continue;
        }
        // The first Conv reading the block's input (other than a projection) carries `<layer>.conv1.weight`.
        for &i in index.consumers(&previous.tensor) {
            let node = &graph.node[i];
            let Some(weight) = node.input.get(1).filter(|_| op(node) == "Conv") else { continue };
            if let Some(prefix) = weight.strip_suffix(".conv1.weight") {
                checked += 1;
                if prefix != layer.name {
                    tracing::warn!(structural = %layer.name, weights = %prefix, "layer names from structure and weight names disagree");
                }
            }
        }
    }
    tracing::debug!(checked, "cross-checked layer names against weight names");
}

/// Ops whose outputs name the layers of a graph that is not a ResNet.
const LAYER_OPS: [&str; 13] = [
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "Elu",
    "HardSigmoid",
    "HardSwish",
    "Gelu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
];

/// Layers of a graph that is not a ResNet: the outputs of its activations and pooling nodes,
/// named by their tensors, in graph order (the logits excluded).
fn tensor_named_layers(graph: &GraphProto, logits: &str) -> Vec<NamedLayer> {
    graph
        .node
        .iter()
        .filter(|n| LAYER_OPS.contains(&op(n)))
        .filter_map(|n| n.output.first())
        .filter(|t| t.as_str() != logits)
        .map(|t| NamedLayer { name: t.clone(), tensor: t.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use explain_proto::onnx::{GraphProto, ModelProto, NodeProto};
    use prost::Message;

    use super::*;

    const LAYER_NAMES: [&str; 11] = [
        "conv1", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
        "layer4.1", "avgpool",
    ];

    fn fixture_graph(name: &str) -> GraphProto {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        ModelProto::decode(bytes.as_slice()).expect("onnx").graph.expect("graph")
    }

    #[test]
    fn both_torch_exporters_give_the_layer_contract_names() {
        for (file, pool_tensor) in
            [("tiny_resnet18_w8.dynamo.onnx", "view"), ("tiny_resnet18_w8.legacy.onnx", "/Flatten_output_0")]
        {
            let graph = fixture_graph(file);
            let map = name_layers(&graph, "input", "logits");
            assert_eq!(map.naming, Naming::ResNet, "{file}");
            let names: Vec<&str> = map.layers.iter().map(|l| l.name.as_str()).collect();
            assert_eq!(names, LAYER_NAMES, "{file}");
            assert_eq!(map.layers[10].tensor, pool_tensor, "{file}");
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_cnn_is_named_by_tensors() {
        let graph = GraphProto {
            node: vec![
                node("Conv", &["x", "w"], "c"),
                node("Relu", &["c"], "features"),
                node("GlobalAveragePool", &["features"], "pooled"),
                node("Flatten", &["pooled"], "flat"),
                node("Gemm", &["flat", "fc"], "logits"),
            ],
            ..Default::default()
        };
        let map = name_layers(&graph, "x", "logits");
        assert_eq!(map.naming, Naming::TensorNames);
        let names: Vec<&str> = map.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["features", "pooled", "flat"]);
    }
}
