//! The emitter: appends the nodes and constants of the backward pass under unique names, in the
//! op signatures of opset 13 and later (the augmenter refuses older models).

use explain_proto::onnx::{AttributeProto, NodeProto, TensorProto};

use crate::graph;

/// New nodes and initializers, named uniquely under the `explain/` prefix.
#[derive(Debug)]
pub(super) struct Emitter {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
    counter: usize,
}

impl Emitter {
    /// An empty emitter.
    pub(super) fn new() -> Self {
        Self { nodes: Vec::new(), initializers: Vec::new(), counter: 0 }
    }

    /// A fresh tensor name.
    pub(super) fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("explain/{hint}/{}", self.counter)
    }

    /// Appends `op(inputs)` with one output, named `output`.
    pub(super) fn op_into(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        let name = format!("explain/{}/{op}", self.nodes.len());
        self.nodes.push(graph::node(op, &name, inputs, &[output], attributes));
    }

    /// Appends `op(inputs)` with one fresh output and returns its name.
    pub(super) fn op(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.op_into(op, inputs, &output, attributes);
        output
    }

    /// A float32 constant.
    pub(super) fn floats(&mut self, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh("const");
        self.initializers.push(graph::float_tensor(&name, dims, values));
        name
    }

    /// An int64 constant.
    pub(super) fn ints(&mut self, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh("const");
        self.initializers.push(graph::int64_tensor(&name, dims, values));
        name
    }

    /// A float32 scalar.
    pub(super) fn scalar(&mut self, value: f32) -> String {
        self.floats(&[], &[value])
    }

    /// `Reshape(x, shape)` with a static target (0 copies the dimension, -1 infers it).
    pub(super) fn reshape_to(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(&[shape.len() as i64], shape);
        self.op("Reshape", &[x, &shape], vec![])
    }

    /// `Reshape(x, Shape(like))`: `x` laid out as `like`.
    pub(super) fn reshape_like(&mut self, x: &str, like: &str) -> String {
        let shape = self.op("Shape", &[like], vec![]);
        self.op("Reshape", &[x, &shape], vec![])
    }

    /// `Expand(x, Shape(like))`.
    pub(super) fn expand_like(&mut self, x: &str, like: &str) -> String {
        let shape = self.op("Shape", &[like], vec![]);
        self.op("Expand", &[x, &shape], vec![])
    }

    /// `ReduceSum(x, axes, keepdims = 1)` (axes as an input, opset 13).
    pub(super) fn reduce_sum_keepdims(&mut self, x: &str, axes: &[i64]) -> String {
        let axes = self.ints(&[axes.len() as i64], axes);
        self.op("ReduceSum", &[x, &axes], vec![graph::attr_int("keepdims", 1)])
    }

    /// `Where(condition, x, 0)`.
    pub(super) fn where_else_zero(&mut self, condition: &str, x: &str) -> String {
        let zero = self.scalar(0.0);
        self.op("Where", &[condition, x, &zero], vec![])
    }
}
