//! Graph surgery: normalising an exported graph (symbolic batch, fixed input size) and exposing
//! named layers as graph outputs, so one ONNX Runtime run returns every activation asked for.

use explain_proto::onnx::{GraphProto, ModelProto, tensor_shape_proto, type_proto};

use super::{InputTensor, ModelError, layers::LayerMap};
use crate::graph;

/// Makes the batch dimension of the graph's input and outputs symbolic, fixes the input's
/// spatial size (from the graph, or `input_size` when the graph leaves it open), drops stale
/// intermediate shape annotations, and returns the input's description.
pub(super) fn normalise(graph: &mut GraphProto, input_size: Option<u32>) -> Result<InputTensor, ModelError> {
    let input =
        graph::data_input(graph).ok_or_else(|| ModelError::NotAClassifier("the graph has no data input".into()))?;
    let name = input.name().to_owned();
    let dims = graph::dims(input)
        .ok_or_else(|| ModelError::NotAClassifier(format!("input `{name}` is not a tensor with a known rank")))?;
    let [_, channels, height, width] = dims.as_slice() else {
        return Err(ModelError::NotAClassifier(format!("input `{name}` has rank {}, expected 4 (NCHW)", dims.len())));
    };
    if channels.is_some_and(|c| c != 3) {
        return Err(ModelError::NotAClassifier(format!(
            "input `{name}` has {} channels, expected 3 (RGB)",
            channels.unwrap_or(0)
        )));
    }
    let (height, width) = match (height, width, input_size) {
        (_, _, Some(size)) => (size, size),
        (Some(h), Some(w), None) => (dim_u32(*h)?, dim_u32(*w)?),
        (Some(_) | None, Some(_) | None, None) => return Err(ModelError::InputSizeUnknown),
    };
    let input_index = graph.input.iter().position(|value| value.name() == name).unwrap_or_default();
    set_input_shape(&mut graph.input[input_index], height, width);
    graph.output.iter_mut().for_each(graph::make_batch_symbolic);
    graph.value_info.clear();
    Ok(InputTensor { name, height, width })
}

fn dim_u32(dim: i64) -> Result<u32, ModelError> {
    u32::try_from(dim).map_err(|_| ModelError::NotAClassifier(format!("input dimension {dim} is out of range")))
}

/// Sets the input's shape to `[batch, 3, height, width]`.
fn set_input_shape(input: &mut explain_proto::onnx::ValueInfoProto, height: u32, width: u32) {
    graph::make_batch_symbolic(input);
    let Some(type_proto::Value::TensorType(tensor)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
        return;
    };
    if let Some(shape) = tensor.shape.as_mut() {
        for (dim, value) in shape.dim.iter_mut().skip(1).zip([3, i64::from(height), i64::from(width)]) {
            dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(value));
        }
    }
}

/// A copy of `model` whose outputs are the logits followed by every named layer's tensor.
pub(super) fn with_layer_outputs(model: &ModelProto, logits: &str, layers: &LayerMap) -> ModelProto {
    let mut model = model.clone();
    if let Some(graph) = model.graph.as_mut() {
        graph.output.retain(|output| output.name() == logits);
        for layer in &layers.layers {
            if layer.tensor != logits {
                graph.output.push(graph::float_value(&layer.tensor));
            }
        }
    }
    model
}

/// A copy of `model` whose outputs are every tensor its nodes produce, types left to the runtime:
/// one run of it measures the shape of every tensor.
pub(super) fn with_every_output(model: &ModelProto) -> ModelProto {
    let mut model = model.clone();
    if let Some(graph) = model.graph.as_mut() {
        let outputs: Vec<_> =
            graph.node.iter().flat_map(|node| node.output.iter()).filter(|t| !t.is_empty()).cloned().collect();
        graph.output = outputs
            .iter()
            .map(|name| explain_proto::onnx::ValueInfoProto { name: Some(name.clone()), ..Default::default() })
            .collect();
    }
    model
}
