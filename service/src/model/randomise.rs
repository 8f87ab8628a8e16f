//! Cascading parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): a
//! copy of the model whose learned weights are replaced by noise from a layer up to the logits. A
//! method whose maps barely change on such a copy explains the image, not the model.
//!
//! The weights and biases of every Conv, Gemm and MatMul downstream of the chosen point are
//! redrawn from a normal distribution with the original tensor's standard deviation (a seeded
//! stand-in for re-initialisation); other constants (BatchNormalization statistics, shapes) keep
//! their values, so the copy stays numerically sane.

use std::collections::{HashSet, VecDeque};

use explain_proto::onnx::{ModelProto, TensorProto};

use super::{Model, ModelError};
use crate::{
    graph::{self, DataType, GraphIndex},
    noise::Noise,
};

/// What `--from head` randomises: only the classifier after the last named layer.
pub const HEAD: &str = "head";

impl Model {
    /// This model with the learned weights of layer `from` and of everything after it redrawn
    /// (`from` = [`HEAD`]: the classifier only), from `seed`.
    pub fn randomised(&self, from: &str, seed: u64) -> Result<ModelProto, ModelError> {
        let layers = &self.layers.layers;
        let start = if from == HEAD {
            layers.last().map_or(&self.input.name, |layer| &layer.tensor)
        } else {
            match layers.iter().position(|layer| layer.name == from) {
                Some(0) => &self.input.name,
                Some(position) => &layers[position - 1].tensor,
                None => {
                    let known: Vec<&str> = layers.iter().map(|layer| layer.name.as_str()).chain([HEAD]).collect();
                    return Err(ModelError::UnknownLayer { layer: from.to_owned(), known: known.join(", ") });
                }
            }
        };
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().ok_or_else(|| ModelError::NotAClassifier("the model has no graph".into()))?;
        let weights = downstream_weights(graph, start);
        let mut noise = Noise::new(seed);
        // Initializers in graph order, so that a seed always gives the same copy.
        for tensor in graph.initializer.iter_mut().filter(|tensor| weights.contains(tensor.name())) {
            redraw(tensor, &mut noise);
        }
        Ok(proto)
    }
}

/// The weight and bias initializers of the Conv, Gemm and MatMul nodes that depend on `start`.
fn downstream_weights(graph: &explain_proto::onnx::GraphProto, start: &str) -> HashSet<String> {
    let index = GraphIndex::new(graph);
    let mut seen = HashSet::new();
    let mut queue: VecDeque<usize> = index.consumers(start).iter().copied().collect();
    let mut weights = HashSet::new();
    while let Some(position) = queue.pop_front() {
        if !seen.insert(position) {
            continue;
        }
        let node = &graph.node[position];
        if matches!(node.op_type(), "Conv" | "Gemm" | "MatMul") {
            weights.extend(node.input.iter().skip(1).cloned());
        }
        for output in &node.output {
            queue.extend(index.consumers(output));
        }
    }
    weights
}

/// Replaces a float32 tensor's values by normals with its own standard deviation.
fn redraw(tensor: &mut TensorProto, noise: &mut Noise) {
    if tensor.data_type() != DataType::Float as i32 {
        return;
    }
    let values = graph::float_values(tensor);
    let count = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
    let deviation = (values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / count).sqrt() as f32;
    let mut fresh = vec![0.0; values.len()];
    noise.fill_normal(&mut fresh);
    fresh.iter_mut().for_each(|v| *v *= deviation);
    tensor.float_data.clear();
    tensor.raw_data = Some(fresh.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSource;

    fn weights(proto: &ModelProto) -> Vec<(String, Vec<f32>)> {
        let graph = proto.graph.as_ref().expect("graph");
        graph.initializer.iter().map(|t| (t.name().to_owned(), graph::float_values(t))).collect()
    }

    #[test]
    fn the_cascade_redraws_the_chosen_layer_and_everything_above_it_only() {
        let model = Model::load(&ModelSource::Embedded, None).expect("the default model");
        let original = weights(&model.proto);
        let head = weights(&model.randomised(HEAD, 1).expect("head"));
        let from_layer4 = weights(&model.randomised("layer4.1", 1).expect("layer4.1"));
        let everything = weights(&model.randomised("conv1", 1).expect("conv1"));
        let changed = |copy: &[(String, Vec<f32>)]| original.iter().zip(copy).filter(|(a, b)| a.1 != b.1).count();
        let float_weights = original.iter().filter(|(_, values)| values.len() > 1).count();
        // The head is the fc layer: its weight and bias.
        assert_eq!(changed(&head), 2);
        // layer4.1 adds two convolutions, each a weight and a folded bias.
        assert_eq!(changed(&from_layer4), 6);
        assert!(changed(&everything) >= float_weights - 1, "{} of {float_weights}", changed(&everything));
        assert_eq!(from_layer4, weights(&model.randomised("layer4.1", 1).expect("again")), "seeded");
    }

    #[test]
    fn an_unknown_layer_is_named_with_the_known_ones() {
        let model = Model::load(&ModelSource::Embedded, None).expect("the default model");
        let error = model.randomised("layer9.9", 0).expect_err("no such layer");
        assert!(
            error.to_string().contains("layer9.9") && error.to_string().contains("layer4.1, avgpool, head"),
            "{error}"
        );
    }
}
