//! Small ONNX models built in the tests, independent of the service's own graph code: seeded
//! random CNNs that use every op the augmenter differentiates beyond ResNet's (piecewise-linear
//! ops in one, smooth activations and softmaxes in the other), and a model with an op it cannot
//! differentiate.

use explain_proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension::Value as Dim, type_proto,
};

/// A SplitMix64 stream of uniform numbers in [-1, 1).
pub struct Random(u64);

impl Random {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number in [-1, 1).
    pub fn sample(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1_u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `count` numbers scaled by `scale`.
    pub fn values(&mut self, count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|_| self.sample() * scale).collect()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{output}")),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn floats(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: values,
        ..Default::default()
    }
}

fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension { value: Some(d.map_or(Dim::DimParam("batch".into()), Dim::DimValue)), denotation: None })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, size: i64, classes: i64) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            node: nodes,
            name: Some("test".into()),
            initializer: initializers,
            input: vec![value("input", &[None, Some(3), Some(size), Some(size)])],
            output: vec![value("logits", &[None, Some(classes)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Side of the random CNN's input.
pub const RANDOM_CNN_SIZE: i64 = 16;
/// Classes of the random CNN.
pub const RANDOM_CNN_CLASSES: i64 = 5;

/// A seeded random CNN (16×16 input, 5 classes) using Conv (strided, padded, grouped, dilated),
/// unfolded BatchNormalization, Clip, AveragePool, LeakyRelu, Mul/Add/Sub/Div with broadcast
/// constants, a residual Add, Identity, overlapping MaxPool, Concat, Relu, ReduceMean without kept
/// dimensions, Reshape, MatMul and a bias Add.
pub fn random_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let mut init = Vec::new();
    let mut weight = |name: &str, dims: &[i64], scale: f32, offset: f32| {
        let count = dims.iter().product::<i64>() as usize;
        init.push(floats(name, dims, random.values(count, scale).into_iter().map(|v| v + offset).collect()));
    };
    weight("w1", &[8, 3, 3, 3], 0.4, 0.0);
    weight("b1", &[8], 0.1, 0.0);
    weight("bn_scale", &[8], 0.3, 1.0);
    weight("bn_bias", &[8], 0.2, 0.0);
    weight("bn_mean", &[8], 0.1, 0.0);
    weight("bn_var", &[8], 0.2, 0.5);
    weight("w2", &[8, 4, 3, 3], 0.3, 0.0);
    weight("scale", &[1, 8, 1, 1], 0.5, 1.0);
    weight("w_fc", &[16, 5], 0.5, 0.0);
    weight("b_fc", &[5], 0.1, 0.0);
    init.push(floats("zero", &[], vec![0.0]));
    init.push(floats("six", &[], vec![6.0]));
    init.push(floats("shift", &[], vec![0.05]));
    init.push(floats("two", &[], vec![2.0]));
    init.push(TensorProto {
        name: Some("flat_shape".into()),
        dims: vec![2],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![-1, 16],
        ..Default::default()
    });
    let nodes = vec![
        node("Conv", &["input", "w1", "b1"], "c1", vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]),
        node(
            "BatchNormalization",
            &["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            "bn",
            vec![float("epsilon", 1e-3)],
        ),
        node("Clip", &["bn", "zero", "six"], "clip", vec![]),
        node("AveragePool", &["clip"], "pool", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]),
        node(
            "Conv",
            &["pool", "w2"],
            "c2",
            vec![int("group", 2), ints("dilations", &[2, 2]), ints("pads", &[2, 2, 2, 2])],
        ),
        node("LeakyRelu", &["c2"], "leaky", vec![float("alpha", 0.1)]),
        node("Mul", &["leaky", "scale"], "scaled", vec![]),
        node("Add", &["scaled", "pool"], "residual", vec![]),
        node("Sub", &["residual", "shift"], "shifted", vec![]),
        node("Div", &["shifted", "two"], "halved", vec![]),
        node("Identity", &["halved"], "same", vec![]),
        node("MaxPool", &["same"], "max", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[1, 1])]),
        node("Relu", &["max"], "relu", vec![]),
        node("Concat", &["max", "relu"], "both", vec![int("axis", 1)]),
        node("ReduceMean", &["both"], "mean", vec![ints("axes", &[2, 3]), int("keepdims", 0)]),
        node("Reshape", &["mean", "flat_shape"], "flat", vec![]),
        node("MatMul", &["flat", "w_fc"], "fc", vec![]),
        node("Add", &["fc", "b_fc"], "logits", vec![]),
    ];
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A seeded random CNN (the same input and classes as [`random_cnn`]) through the smooth and
/// hard activations: Tanh, HardSwish, Sigmoid (times its input, as SiLU), Erf, Softmax over
/// channels, HardSigmoid, Pow with a constant exponent, Sqrt, LogSoftmax over channels, then
/// GlobalAveragePool, Flatten and Gemm.
pub fn smooth_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let mut init = Vec::new();
    let mut weight = |name: &str, dims: &[i64], scale: f32| {
        let count = dims.iter().product::<i64>() as usize;
        init.push(floats(name, dims, random.values(count, scale)));
    };
    weight("w1", &[6, 3, 3, 3], 0.5);
    weight("b1", &[6], 0.2);
    weight("w2", &[6, 6, 3, 3], 0.6);
    weight("w_fc", &[5, 6], 1.0);
    weight("b_fc", &[5], 0.1);
    init.push(floats("one", &[], vec![1.0]));
    init.push(floats("exponent", &[], vec![1.5]));
    let nodes = vec![
        node("Conv", &["input", "w1", "b1"], "c1", vec![ints("pads", &[1, 1, 1, 1])]),
        node("Tanh", &["c1"], "tanh", vec![]),
        node("Conv", &["tanh", "w2"], "c2", vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])]),
        node("HardSwish", &["c2"], "hard_swish", vec![]),
        node("Sigmoid", &["hard_swish"], "gate", vec![]),
        node("Mul", &["hard_swish", "gate"], "silu", vec![]),
        node("Erf", &["c2"], "erf", vec![]),
        node("Add", &["silu", "erf"], "sum", vec![]),
        node("Softmax", &["sum"], "softmax", vec![int("axis", 1)]),
        node("HardSigmoid", &["c2"], "hard_sigmoid", vec![float("alpha", 0.3), float("beta", 0.4)]),
        node("Add", &["softmax", "hard_sigmoid"], "positive", vec![]),
        node("Pow", &["positive", "exponent"], "power", vec![]),
        node("Add", &["power", "one"], "shifted", vec![]),
        node("Sqrt", &["shifted"], "root", vec![]),
        node("LogSoftmax", &["root"], "log_softmax", vec![int("axis", 1)]),
        node("GlobalAveragePool", &["log_softmax"], "pooled", vec![]),
        node("Flatten", &["pooled"], "flat", vec![]),
        node("Gemm", &["flat", "w_fc", "b_fc"], "logits", vec![int("transB", 1)]),
    ];
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A seeded random CNN (the same input and classes as [`random_cnn`]) that moves values around as
/// ConvNeXt and ShuffleNet do: Transpose to channels-last, LayerNormalization over the channels and
/// back, Split into two halves along the channels (one convolved again), Concat, a channel shuffle
/// (Reshape to five dimensions with a target computed from Shape, Transpose, Reshape back), a Slice
/// of half the channels whose bounds are computed from Shape, a Gather of channels (one twice, one by
/// a negative index), a Pad with a constant, a ReduceSum, an Expand, then GlobalAveragePool,
/// Flatten and Gemm.
pub fn layout_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let mut init = Vec::new();
    let mut weight = |name: &str, dims: &[i64], scale: f32, offset: f32| {
        let count = dims.iter().product::<i64>() as usize;
        init.push(floats(name, dims, random.values(count, scale).into_iter().map(|v| v + offset).collect()));
    };
    weight("w1", &[8, 3, 3, 3], 0.5, 0.0);
    weight("ln_scale", &[8], 0.3, 1.0);
    weight("ln_bias", &[8], 0.2, 0.0);
    weight("w2", &[4, 4, 3, 3], 0.4, 0.0);
    weight("w_fc", &[5, 4], 1.0, 0.0);
    weight("b_fc", &[5], 0.1, 0.0);
    weight("by_position", &[1, 4, 11, 11], 1.0, 0.0);
    let int64 = |name: &str, dims: &[i64], values: &[i64]| TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: values.to_vec(),
        ..Default::default()
    };
    init.extend([
        int64("halves", &[2], &[4, 4]),
        int64("index_0", &[], &[0]),
        int64("index_1", &[], &[1]),
        int64("axes_0", &[1], &[0]),
        int64("groups", &[1], &[2]),
        int64("per_group", &[1], &[4]),
        int64("spatial", &[2], &[8, 8]),
        int64("flat_channels", &[4], &[0, -1, 8, 8]),
        int64("two", &[], &[2]),
        int64("channel_axis", &[1], &[1]),
        int64("picked", &[4], &[3, 0, 0, -1]),
        int64("pads", &[8], &[0, 0, 1, 2, 0, 0, 2, 1]),
        int64("width_axis", &[1], &[3]),
        int64("three_columns", &[4], &[1, 1, 11, 3]),
    ]);
    init.push(floats("pad_value", &[], vec![0.5]));
    let split = NodeProto {
        op_type: Some("Split".into()),
        name: Some("Split_halves".into()),
        input: vec!["normalised".into(), "halves".into()],
        output: vec!["first".into(), "second".into()],
        attribute: vec![int("axis", 1)],
        ..Default::default()
    };
    let nodes = vec![
        node("Conv", &["input", "w1"], "c1", vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])]),
        node("Transpose", &["c1"], "last", vec![ints("perm", &[0, 2, 3, 1])]),
        node(
            "LayerNormalization",
            &["last", "ln_scale", "ln_bias"],
            "norm",
            vec![int("axis", -1), float("epsilon", 1e-5)],
        ),
        node("Transpose", &["norm"], "normalised", vec![ints("perm", &[0, 3, 1, 2])]),
        split,
        node("Conv", &["second", "w2"], "c2", vec![ints("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c2"], "r2", vec![]),
        node("Concat", &["first", "r2"], "joined", vec![int("axis", 1)]),
        // Channel shuffle: [N, 2, 4, 8, 8] with N read from the tensor's shape.
        node("Shape", &["joined"], "joined_shape", vec![]),
        node("Gather", &["joined_shape", "index_0"], "batch", vec![int("axis", 0)]),
        node("Unsqueeze", &["batch", "axes_0"], "batch_list", vec![]),
        node("Concat", &["batch_list", "groups", "per_group", "spatial"], "grouped_shape", vec![int("axis", 0)]),
        node("Reshape", &["joined", "grouped_shape"], "grouped", vec![]),
        node("Transpose", &["grouped"], "swapped", vec![ints("perm", &[0, 2, 1, 3, 4])]),
        node("Reshape", &["swapped", "flat_channels"], "shuffled", vec![]),
        // The first half of the channels, its end computed from the shape.
        node("Shape", &["shuffled"], "shuffled_shape", vec![]),
        node("Gather", &["shuffled_shape", "index_1"], "channels", vec![int("axis", 0)]),
        node("Div", &["channels", "two"], "half", vec![]),
        node("Unsqueeze", &["half", "axes_0"], "half_list", vec![]),
        node("Slice", &["shuffled", "axes_0", "half_list", "channel_axis"], "sliced", vec![]),
        // Channels picked with a repeat and a negative index.
        node("Gather", &["sliced", "picked"], "gathered", vec![int("axis", 1)]),
        // Padded with 0.5 unevenly, weighed by position, summed across the width, broadcast to
        // three columns.
        node("Pad", &["gathered", "pads", "pad_value"], "padded", vec![]),
        node("Mul", &["padded", "by_position"], "weighed", vec![]),
        node("ReduceSum", &["weighed", "width_axis"], "row_sums", vec![int("keepdims", 1)]),
        node("Expand", &["row_sums", "three_columns"], "widened", vec![]),
        node("GlobalAveragePool", &["widened"], "pooled", vec![]),
        node("Flatten", &["pooled"], "flat", vec![]),
        node("Gemm", &["flat", "w_fc", "b_fc"], "logits", vec![int("transB", 1)]),
    ];
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A seeded random CNN (the same input and classes as [`random_cnn`]) through opset 20's Gelu, exact
/// and with the tanh approximation (ConvNeXt's and ViT's activation as the dynamo exporter writes it).
pub fn gelu_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let init = vec![
        floats("w1", &[6, 3, 3, 3], random.values(162, 0.6)),
        floats("w2", &[6, 6, 3, 3], random.values(324, 0.5)),
        floats("w_fc", &[5, 6], random.values(30, 1.0)),
        floats("b_fc", &[5], random.values(5, 0.1)),
    ];
    let approximate = AttributeProto {
        name: Some("approximate".into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(b"tanh".to_vec()),
        ..Default::default()
    };
    let nodes = vec![
        node("Conv", &["input", "w1"], "c1", vec![ints("pads", &[1, 1, 1, 1])]),
        node("Gelu", &["c1"], "exact", vec![]),
        node("Conv", &["exact", "w2"], "c2", vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])]),
        node("Gelu", &["c2"], "approximated", vec![approximate]),
        node("GlobalAveragePool", &["approximated"], "pooled", vec![]),
        node("Flatten", &["pooled"], "flat", vec![]),
        node("Gemm", &["flat", "w_fc", "b_fc"], "logits", vec![int("transB", 1)]),
    ];
    let mut gelu = model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES);
    gelu.opset_import[0].version = Some(20);
    gelu
}

/// A seeded random CNN (the same input and classes as [`random_cnn`]) with three strided stems on
/// the image, whose data gradients are phase-split: 7 × 7 with stride 2 (ResNet's), 5 × 5 with
/// stride 3, dilation 2 and unequal pads, and 4 × 4 with stride 4 (ConvNeXt's patches); each
/// through Tanh, weighed by position and averaged, then concatenated into Gemm.
pub fn stem_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let mut init = vec![
        floats("w_resnet", &[4, 3, 7, 7], random.values(588, 0.2)),
        floats("w_dilated", &[4, 3, 5, 5], random.values(300, 0.3)),
        floats("w_patches", &[4, 3, 4, 4], random.values(192, 0.4)),
        floats("w_stems", &[5, 12], random.values(60, 1.0)),
        floats("b_fc", &[5], random.values(5, 0.1)),
    ];
    let stems = [
        ("resnet", 8, vec![ints("strides", &[2, 2]), ints("pads", &[3, 3, 3, 3])]),
        ("dilated", 4, vec![ints("strides", &[3, 3]), ints("dilations", &[2, 2]), ints("pads", &[2, 1, 0, 3])]),
        ("patches", 4, vec![ints("strides", &[4, 4])]),
    ];
    let mut nodes = Vec::new();
    for (name, size, attributes) in stems {
        init.push(floats(
            &format!("at_{name}"),
            &[1, 4, size, size],
            random.values(4 * size as usize * size as usize, 1.0),
        ));
        nodes.extend([
            node("Conv", &["input", &format!("w_{name}")], &format!("{name}_conv"), attributes),
            node("Tanh", &[&format!("{name}_conv")], &format!("{name}_tanh"), vec![]),
            node("Mul", &[&format!("{name}_tanh"), &format!("at_{name}")], &format!("{name}_weighed"), vec![]),
            node("GlobalAveragePool", &[&format!("{name}_weighed")], &format!("{name}_pooled"), vec![]),
        ]);
    }
    nodes.extend([
        node("Concat", &["resnet_pooled", "dilated_pooled", "patches_pooled"], "stems", vec![int("axis", 1)]),
        node("Flatten", &["stems"], "stems_flat", vec![]),
        node("Gemm", &["stems_flat", "w_stems", "b_fc"], "logits", vec![int("transB", 1)]),
    ]);
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A seeded random CNN (the same input and classes as [`random_cnn`]) through Resize as exporters
/// write it: nearest ×2 by scales (PyTorch's `interpolate`: asymmetric, floor), linear down to 11 × 11
/// by sizes (`pytorch_half_pixel`), linear up to 13 × 13 with `align_corners`, nearest to 7 × 7
/// (`half_pixel`, round half down); weighed by position before GlobalAveragePool, Flatten and Gemm.
pub fn resize_cnn(seed: u64) -> ModelProto {
    let mut random = Random::new(seed);
    let mut init = vec![
        floats("w1", &[4, 3, 3, 3], random.values(108, 0.5)),
        floats("w2", &[4, 4, 3, 3], random.values(144, 0.4)),
        floats("by_position", &[1, 4, 7, 7], random.values(196, 1.0)),
        floats("w_fc", &[5, 4], random.values(20, 1.0)),
        floats("b_fc", &[5], random.values(5, 0.1)),
        floats("double", &[4], vec![1.0, 1.0, 2.0, 2.0]),
    ];
    for (name, size) in [("to_11", 11), ("to_13", 13), ("to_7", 7)] {
        init.push(TensorProto {
            name: Some(name.into()),
            dims: vec![4],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![1, 4, size, size],
            ..Default::default()
        });
    }
    let text = |name: &str, value: &str| AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..Default::default()
    };
    let resize = |inputs: &[&str], output: &str, settings: [(&str, &str); 3]| {
        node("Resize", inputs, output, settings.iter().map(|(name, value)| text(name, value)).collect())
    };
    let nodes = vec![
        node("Conv", &["input", "w1"], "c1", vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])]),
        resize(
            &["c1", "", "double"],
            "doubled",
            [("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor")],
        ),
        node("Conv", &["doubled", "w2"], "c2", vec![ints("pads", &[1, 1, 1, 1])]),
        resize(
            &["c2", "", "", "to_11"],
            "shrunk",
            [("mode", "linear"), ("coordinate_transformation_mode", "pytorch_half_pixel"), ("nearest_mode", "floor")],
        ),
        resize(
            &["shrunk", "", "", "to_13"],
            "grown",
            [("mode", "linear"), ("coordinate_transformation_mode", "align_corners"), ("nearest_mode", "floor")],
        ),
        resize(
            &["grown", "", "", "to_7"],
            "nearest",
            [
                ("mode", "nearest"),
                ("coordinate_transformation_mode", "half_pixel"),
                ("nearest_mode", "round_prefer_floor"),
            ],
        ),
        node("Mul", &["nearest", "by_position"], "weighed", vec![]),
        node("GlobalAveragePool", &["weighed"], "pooled", vec![]),
        node("Flatten", &["pooled"], "flat", vec![]),
        node("Gemm", &["flat", "w_fc", "b_fc"], "logits", vec![int("transB", 1)]),
    ];
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A small MobileNet-like CNN whose nodes carry the module scopes the legacy torch exporter writes
/// into node names (`/features/features.1/conv/conv.0/Conv`): blocks `features.0` and
/// `features.1`, a functional GlobalAveragePool and Flatten outside any module, and
/// `classifier.1` producing the logits. 16 × 16 input, 5 classes.
pub fn scoped_cnn() -> ModelProto {
    let mut random = Random::new(9);
    let init = vec![
        floats("w0", &[4, 3, 3, 3], random.values(108, 0.5)),
        floats("w1", &[6, 4, 3, 3], random.values(216, 0.4)),
        floats("w_fc", &[5, 6], random.values(30, 1.0)),
        floats("b_fc", &[5], random.values(5, 0.1)),
    ];
    let scoped = |name: &str, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>| NodeProto {
        name: Some(name.into()),
        ..node(op, inputs, output, attributes)
    };
    let nodes = vec![
        scoped(
            "/features/features.0/features.0.0/Conv",
            "Conv",
            &["input", "w0"],
            "c0",
            vec![ints("pads", &[1, 1, 1, 1])],
        ),
        scoped("/features/features.0/features.0.2/Clip", "Relu", &["c0"], "a0", vec![]),
        scoped(
            "/features/features.1/conv/conv.0/Conv",
            "Conv",
            &["a0", "w1"],
            "c1",
            vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
        ),
        scoped("/features/features.1/conv/conv.1/Relu", "Relu", &["c1"], "a1", vec![]),
        scoped("/GlobalAveragePool", "GlobalAveragePool", &["a1"], "pooled", vec![]),
        scoped("/Flatten", "Flatten", &["pooled"], "flat", vec![]),
        scoped("/classifier/classifier.1/Gemm", "Gemm", &["flat", "w_fc", "b_fc"], "logits", vec![int("transB", 1)]),
    ];
    model(nodes, init, RANDOM_CNN_SIZE, RANDOM_CNN_CLASSES)
}

/// A CNN whose path from input to logits goes through Round, which has no gradient rule, after a
/// spatial layer (`features`, a Relu).
pub fn cnn_without_gradient_rule() -> ModelProto {
    let mut random = Random::new(1);
    let init = vec![
        floats("w", &[4, 3, 3, 3], random.values(108, 0.3)),
        floats("fc_w", &[2, 4], random.values(8, 0.5)),
        floats("fc_b", &[2], vec![0.0, 0.1]),
    ];
    let nodes = vec![
        node("Conv", &["input", "w"], "conv", vec![ints("pads", &[1, 1, 1, 1])]),
        node("Relu", &["conv"], "features", vec![]),
        node("Round", &["features"], "rounded", vec![]),
        node("GlobalAveragePool", &["rounded"], "pooled", vec![]),
        node("Flatten", &["pooled"], "flat", vec![]),
        node("Gemm", &["flat", "fc_w", "fc_b"], "logits", vec![int("transB", 1)]),
    ];
    model(nodes, init, 8, 2)
}
