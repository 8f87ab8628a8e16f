//! Layer names as in PyTorch for graphs that are not ResNets: the torch exporters record the module
//! each node comes from (the legacy exporter in the node's name, `/features/features.3/conv/…/Clip`;
//! the dynamo exporter in its `pkg.torch.onnx.name_scopes` metadata), so the output of module
//! `features.3` is the last tensor computed inside it. Layers are the modules one and two levels
//! below the model (`features`, `features.3`, `stage2.0`, `trunk_output.block1`) whose output
//! depends on the image, and the blocks of a stage one level further down (`features.2.1` of an
//! EfficientNet or a ConvNeXt, `trunk_output.block2.block2-1` of a RegNet: numbered children of a
//! level-two module, at least two of them, each of several nodes, so a convolution's own Conv, norm
//! and activation are not blocks); a container whose output is also its last child's is named by
//! the child.

use std::collections::HashMap;

use explain_proto::onnx::{GraphProto, NodeProto};

use super::layers::NamedLayer;
use crate::graph;

/// The metadata key under which the dynamo exporter lists a node's module scopes.
const NAME_SCOPES: &str = "pkg.torch.onnx.name_scopes";

/// The full path of the module `node` was exported from (`features.3.conv.0.2`), if recorded.
pub(super) fn module_path(node: &NodeProto) -> Option<String> {
    if let Some(scopes) = node.metadata_props.iter().find(|entry| entry.key() == NAME_SCOPES) {
        // "['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']": full paths, then the op's name.
        let entries: Vec<&str> = scopes
            .value()
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|entry| entry.trim().trim_matches(|c| c == '\'' || c == '"'))
            .collect();
        return entries.iter().rev().skip(1).find(|entry| !entry.is_empty()).map(|entry| (*entry).to_owned());
    }
    // "/features/features.3/conv/conv.0/conv.0.2/Clip": each scope is named relative to the one
    // above it, or extends its name ("features" → "features.3").
    let name = node.name().strip_prefix('/')?;
    let scopes: Vec<&str> = name.split('/').collect();
    let (_, scopes) = scopes.split_last()?;
    let mut path = String::new();
    let mut previous = "";
    for scope in scopes.iter().filter(|scope| !scope.is_empty()) {
        match scope.strip_prefix(previous).filter(|rest| !previous.is_empty() && rest.starts_with('.')) {
            Some(rest) => path.push_str(rest),
            None if path.is_empty() => path.push_str(scope),
            None => {
                path.push('.');
                path.push_str(scope);
            }
        }
        previous = scope;
    }
    (!path.is_empty()).then_some(path)
}

/// Layers named by module path (see the module's documentation), in the order their outputs are
/// computed, with the outputs of nodes outside any module for which `unscoped` holds (a functional
/// pooling in `forward`) named by their tensors; `None` when no node on the path from `input`
/// records its module.
pub(super) fn module_named_layers(
    graph: &GraphProto,
    input: &str,
    logits: &str,
    unscoped: &dyn Fn(&NodeProto) -> bool,
) -> Option<Vec<NamedLayer>> {
    let depends = graph::depends_on(graph, input);
    // Module path → (its last output, that node's position, depth), and its number of nodes.
    let mut outputs: HashMap<String, (String, usize, usize)> = HashMap::new();
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for (position, node) in graph.node.iter().enumerate() {
        let Some(tensor) = node.output.first().filter(|tensor| depends.contains(*tensor)) else { continue };
        let Some(path) = module_path(node) else {
            if unscoped(node) {
                outputs.insert(tensor.clone(), (tensor.clone(), position, 0));
            }
            continue;
        };
        let parts: Vec<&str> = path.split('.').collect();
        for depth in 1..=parts.len().min(3) {
            let prefix = parts[..depth].join(".");
            *sizes.entry(prefix.clone()).or_default() += 1;
            outputs.insert(prefix, (tensor.clone(), position, depth));
        }
    }
    // Level three only for the numbered blocks of a stage: `0`, or RegNet's `block1-0`.
    let numbered = |path: &str| {
        let last = path.rsplit('.').next().unwrap_or_default();
        last.rsplit('-').next().is_some_and(|number| number.parse::<usize>().is_ok())
    };
    let parent = |path: &str| path.rsplit_once('.').map_or(String::new(), |(parent, _)| parent.to_owned());
    let mut children: HashMap<String, Vec<usize>> = HashMap::new();
    for (path, &(_, _, depth)) in &outputs {
        if depth == 3 && numbered(path) {
            children.entry(parent(path)).or_default().push(sizes[path]);
        }
    }
    outputs.retain(|path, &mut (_, _, depth)| {
        depth < 3
            || (numbered(path)
                && children.get(&parent(path)).is_some_and(|sizes| sizes.len() >= 2 && sizes.iter().all(|&n| n >= 2)))
    });
    if outputs.values().all(|&(_, _, depth)| depth == 0) {
        return None;
    }
    let mut layers: Vec<(String, String, usize, usize)> = outputs
        .into_iter()
        .filter(|(_, (tensor, _, _))| tensor != logits)
        .map(|(path, (tensor, position, depth))| (path, tensor, position, depth))
        .collect();
    // In computation order; of a container and its last child, which share a tensor, the child.
    layers.sort_by_key(|&(_, _, position, depth)| (position, std::cmp::Reverse(depth)));
    layers.dedup_by(|later, earlier| later.1 == earlier.1);
    Some(layers.into_iter().map(|(name, tensor, _, _)| NamedLayer { name, tensor }).collect())
}

#[cfg(test)]
mod tests {
    use explain_proto::onnx::StringStringEntryProto;

    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_legacy_exporters_scopes_give_the_full_module_path() {
        let path = |name: &str| module_path(&node(name, "Clip", &[], "y"));
        assert_eq!(path("/features/features.3/conv/conv.0/conv.0.2/Clip").as_deref(), Some("features.3.conv.0.2"));
        assert_eq!(path("/stage2/stage2.0/branch1/branch1.4/Relu").as_deref(), Some("stage2.0.branch1.4"));
        assert_eq!(path("/GlobalAveragePool"), None, "a functional op outside any module");
        assert_eq!(path("Relu_features"), None, "no scopes");
    }

    #[test]
    fn the_blocks_of_a_stage_are_layers_and_the_parts_of_a_convolution_are_not() {
        let graph = GraphProto {
            node: vec![
                // features.0: a convolution's Conv and activation, one node each.
                node("/features/features.0/features.0.0/Conv", "Conv", &["x", "w0"], "c0"),
                node("/features/features.0/features.0.2/Relu", "Relu", &["c0"], "a0"),
                // features.1: a stage of two blocks of two nodes.
                node("/features/features.1/features.1.0/conv/Conv", "Conv", &["a0", "w1"], "b0"),
                node("/features/features.1/features.1.0/Add", "Add", &["b0", "a0"], "s0"),
                node("/features/features.1/features.1.1/conv/Conv", "Conv", &["s0", "w2"], "b1"),
                node("/features/features.1/features.1.1/Add", "Add", &["b1", "s0"], "s1"),
                node("/classifier/Gemm", "Gemm", &["s1", "fc"], "logits"),
            ],
            ..Default::default()
        };
        let layers = module_named_layers(&graph, "x", "logits", &|_| false).expect("scopes");
        let named: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(named, ["features.0", "features.1.0", "features.1.1"], "the stage gives way to its last block");
    }

    #[test]
    fn the_dynamo_exporters_scopes_give_the_full_module_path() {
        let mut relu = node("node_relu_1", "Relu", &[], "y");
        relu.metadata_props.push(StringStringEntryProto {
            key: Some(NAME_SCOPES.into()),
            value: Some("['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']".into()),
        });
        assert_eq!(module_path(&relu).as_deref(), Some("layer1.0.relu"));
    }

    #[test]
    fn blocks_are_named_by_module_and_containers_give_way_to_their_last_child() {
        let graph = GraphProto {
            node: vec![
                node("/features/features.0/features.0.0/Conv", "Conv", &["x", "w0"], "c0"),
                node("/features/features.0/features.0.2/Clip", "Clip", &["c0"], "a0"),
                node("/features/features.1/conv/conv.0/Conv", "Conv", &["a0", "w1"], "c1"),
                node("/features/features.1/Shape", "Shape", &["c1"], "shape"),
                node("/features/features.1/Add", "Add", &["c1", "a0"], "a1"),
                node("/GlobalAveragePool", "GlobalAveragePool", &["a1"], "pooled"),
                node("/classifier/classifier.1/Gemm", "Gemm", &["pooled", "fc"], "logits"),
            ],
            ..Default::default()
        };
        let pooling = |node: &NodeProto| node.op_type() == "GlobalAveragePool";
        let layers = module_named_layers(&graph, "x", "logits", &pooling).expect("scopes");
        let named: Vec<(&str, &str)> = layers.iter().map(|l| (l.name.as_str(), l.tensor.as_str())).collect();
        assert_eq!(named, [("features.0", "a0"), ("features.1", "a1"), ("pooled", "pooled")]);
        assert!(module_named_layers(&graph, "x", "logits", &|_| false).is_some());
        let unscoped = GraphProto { node: vec![node("Relu_r", "Relu", &["x"], "r")], ..Default::default() };
        assert!(module_named_layers(&unscoped, "x", "logits", &|_| true).is_none(), "no module recorded");
    }
}
