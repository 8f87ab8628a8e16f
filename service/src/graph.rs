//! Small helpers over ONNX graphs (the prost types of the vendored schema): who produces and who
//! consumes each tensor, attribute access, and constructors for the nodes and values that graph
//! surgery adds.

use std::collections::{HashMap, HashSet};

/// ONNX element types.
pub(crate) use explain_proto::onnx::tensor_proto::DataType;
use explain_proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};

/// Producer and consumers of every tensor of a graph, by node index.
#[derive(Debug)]
pub(crate) struct GraphIndex {
    producer: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
}

impl GraphIndex {
    /// Indexes `graph`.
    pub(crate) fn new(graph: &GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, node) in graph.node.iter().enumerate() {
            for output in node.output.iter().filter(|name| !name.is_empty()) {
                producer.insert(output.clone(), index);
            }
            for input in node.input.iter().filter(|name| !name.is_empty()) {
                consumers.entry(input.clone()).or_default().push(index);
            }
        }
        Self { producer, consumers }
    }

    /// The node that produces `tensor`, if a node does (graph inputs and initializers have none).
    pub(crate) fn producer(&self, tensor: &str) -> Option<usize> {
        self.producer.get(tensor).copied()
    }

    /// The nodes that read `tensor`, in graph order.
    pub(crate) fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map_or(&[], Vec::as_slice)
    }
}

/// The tensors computed from `input` (it included), in graph order of their producers. A tensor's
/// shape is not counted as depending on it: what `Shape` or `Size` compute (the target of a
/// Reshape, say) is left out.
pub(crate) fn depends_on(graph: &GraphProto, input: &str) -> HashSet<String> {
    let mut depends = HashSet::from([input.to_owned()]);
    for node in graph.node.iter().filter(|node| !matches!(node.op_type(), "Shape" | "Size")) {
        if node.input.iter().any(|tensor| depends.contains(tensor)) {
            depends.extend(node.output.iter().filter(|tensor| !tensor.is_empty()).cloned());
        }
    }
    depends
}

/// The graph's data input: its first input that is not also an initializer.
pub(crate) fn data_input(graph: &GraphProto) -> Option<&ValueInfoProto> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(TensorProto::name).collect();
    graph.input.iter().find(|input| !initializers.contains(input.name()))
}

/// Static dimensions of a value's tensor type: `Some(n)` for a fixed dimension, `None` for a
/// symbolic or unknown one. `None` overall when the value has no tensor shape.
pub(crate) fn dims(value: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let Some(type_proto::Value::TensorType(tensor)) = value.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let shape = tensor.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|dim| match dim.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(n)) if n > 0 => Some(n),
                Some(tensor_shape_proto::dimension::Value::DimValue(_))
                | Some(tensor_shape_proto::dimension::Value::DimParam(_))
                | None => None,
            })
            .collect(),
    )
}

/// Replaces the first dimension of `value`'s shape (if it has one) with the symbolic `batch`.
pub(crate) fn make_batch_symbolic(value: &mut ValueInfoProto) {
    let Some(type_proto::Value::TensorType(tensor)) = value.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
        return;
    };
    if let Some(first) = tensor.shape.as_mut().and_then(|shape| shape.dim.first_mut()) {
        first.value = Some(tensor_shape_proto::dimension::Value::DimParam("batch".to_owned()));
    }
}

/// A float32 tensor value of unknown shape, for a new graph output.
pub(crate) fn float_value(name: &str) -> ValueInfoProto {
    tensor_value(name, DataType::Float, None)
}

/// A tensor value of the given element type; `shape` dims `None` are symbolic (`batch`).
pub(crate) fn tensor_value(name: &str, elem_type: DataType, shape: Option<&[Option<i64>]>) -> ValueInfoProto {
    let shape = shape.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|dim| tensor_shape_proto::Dimension {
                value: Some(match dim {
                    Some(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                    None => tensor_shape_proto::dimension::Value::DimParam("batch".to_owned()),
                }),
                denotation: None,
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(elem_type as i32), shape })),
        }),
        doc_string: None,
        metadata_props: Vec::new(),
    }
}

/// An attribute of `node` by name.
pub(crate) fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|attribute| attribute.name() == name)
}

/// An integer attribute, or `default` when absent.
pub(crate) fn int_attribute(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, AttributeProto::i)
}

/// An integer-list attribute, empty when absent.
pub(crate) fn ints_attribute(node: &NodeProto, name: &str) -> Vec<i64> {
    attribute(node, name).map(|attribute| attribute.ints.clone()).unwrap_or_default()
}

/// The values of an int64 initializer or constant (raw or typed storage).
pub(crate) fn int64_values(tensor: &TensorProto) -> Vec<i64> {
    match tensor.raw_data.as_ref() {
        Some(raw) if !raw.is_empty() => {
            raw.chunks_exact(8).map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])).collect()
        }
        Some(_) | None => tensor.int64_data.clone(),
    }
}

/// A float attribute, or `default` when absent.
pub(crate) fn float_attribute(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).map_or(default, AttributeProto::f)
}

/// A string attribute (UTF-8), or `default` when absent.
pub(crate) fn string_attribute(node: &NodeProto, name: &str, default: &str) -> String {
    attribute(node, name).map_or_else(|| default.to_owned(), |a| String::from_utf8_lossy(a.s()).into_owned())
}

/// The version of the default ONNX domain the model imports (0 when it imports none).
pub(crate) fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|import| matches!(import.domain(), "" | "ai.onnx"))
        .map_or(0, OperatorSetIdProto::version)
}

/// The values of a float32 tensor (raw or typed storage).
pub(crate) fn float_values(tensor: &TensorProto) -> Vec<f32> {
    match tensor.raw_data.as_ref() {
        Some(raw) if !raw.is_empty() => {
            raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        Some(_) | None => tensor.float_data.clone(),
    }
}

/// The values of a constant tensor, an initializer or the output of a `Constant` node, read by
/// `values` (or, from a `Constant` node's list attribute called `listed`, by `list`).
fn constant<T>(
    graph: &GraphProto,
    name: &str,
    values: fn(&TensorProto) -> Vec<T>,
    (listed, list): (&str, fn(&AttributeProto) -> Vec<T>),
) -> Option<Vec<T>> {
    if let Some(tensor) = graph.initializer.iter().find(|t| t.name() == name) {
        return Some(values(tensor));
    }
    let node = graph.node.iter().find(|n| n.op_type() == "Constant" && n.output.first().is_some_and(|o| o == name))?;
    if let Some(tensor) = attribute(node, "value").and_then(|a| a.t.as_ref()) {
        return Some(values(tensor));
    }
    attribute(node, listed).map(list)
}

/// The int64 values of a constant tensor: an initializer, or the output of a `Constant` node.
pub(crate) fn constant_int64s(graph: &GraphProto, name: &str) -> Option<Vec<i64>> {
    constant(graph, name, int64_values, ("value_ints", |a| a.ints.clone()))
}

/// The float32 values of a constant tensor: an initializer, or the output of a `Constant` node.
pub(crate) fn constant_floats(graph: &GraphProto, name: &str) -> Option<Vec<f32>> {
    constant(graph, name, float_values, ("value_floats", |a| a.floats.clone()))
}

/// An integer attribute for a new node.
pub(crate) fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// An integer-list attribute for a new node.
pub(crate) fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A float attribute for a new node.
pub(crate) fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

/// A string attribute for a new node.
pub(crate) fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A new node of the default domain.
pub(crate) fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        name: Some(name.to_owned()),
        op_type: Some(op_type.to_owned()),
        attribute: attributes,
        ..Default::default()
    }
}

/// A float32 tensor with the given dims and values, row-major.
pub(crate) fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        name: Some(name.to_owned()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    }
}

/// An int64 tensor with the given dims and values, row-major.
pub(crate) fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        name: Some(name.to_owned()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into()),
        ..Default::default()
    }
}
