//! Models from torchvision weights: a ResNet `state_dict` saved as safetensors (torchvision key
//! names, BatchNorm unfolded) becomes the same forward graph `torch.onnx.export` would give, BN
//! folded into the convolutions (ε = 1e-5, computed in float64), so PyTorch users need no ONNX step.
//! BasicBlock and Bottleneck ResNets (18 … 152, ResNeXt's grouped convolutions too) are recognised
//! from the keys.

use std::collections::HashMap;

use explain_proto::onnx::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::ModelError;
use crate::graph;

/// BatchNorm ε of torchvision's ResNets.
const BN_EPSILON: f64 = 1e-5;

/// A tensor of the state dict, as float64.
struct Weight {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// The state dict, by key.
struct StateDict(HashMap<String, Weight>);

impl StateDict {
    fn read(bytes: &[u8]) -> Result<Self, ModelError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors(e.to_string()))?;
        let mut weights = HashMap::new();
        for (name, view) in tensors.iter() {
            let data = view.data();
            // `Dtype` is non-exhaustive: a catch-all arm is required.
            #[allow(clippy::wildcard_enum_match_arm)]
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => {
                    data.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
                }
                Dtype::F64 => {
                    data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect()
                }
                Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f64()).collect(),
                Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f64()).collect(),
                // Integer buffers (BatchNorm's num_batches_tracked) are not weights.
                Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::I8 | Dtype::U8 | Dtype::BOOL => continue,
                other => return Err(ModelError::Safetensors(format!("`{name}` has unsupported dtype {other:?}"))),
            };
            weights.insert(name.to_owned(), Weight { shape: view.shape().to_vec(), values });
        }
        Ok(Self(weights))
    }

    fn get(&self, key: &str) -> Result<&Weight, ModelError> {
        self.0.get(key).ok_or_else(|| ModelError::Safetensors(format!("the state dict has no `{key}`")))
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Blocks per stage: `layer{stage}.{block}.` keys.
    fn blocks(&self, stage: usize) -> usize {
        let prefix = format!("layer{stage}.");
        self.0
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix)?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |last| last + 1)
    }
}

/// Builds the graph node by node.
struct Builder<'d> {
    weights: &'d StateDict,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Channels of each tensor built so far.
    channels: HashMap<String, usize>,
}

impl Builder<'_> {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<explain_proto::onnx::AttributeProto>) {
        let name = format!("/{output}/{op}");
        self.nodes.push(graph::node(op, &name, inputs, &[output], attributes));
    }

    /// `conv` followed by its BatchNorm `bn`, folded into one Conv; returns the output name.
    fn conv_bn(&mut self, input: &str, conv: &str, bn: &str, stride: i64) -> Result<String, ModelError> {
        let weight = self.weights.get(&format!("{conv}.weight"))?;
        let [out, per_group, kh, kw] = weight.shape[..] else {
            return Err(ModelError::Safetensors(format!(
                "`{conv}.weight` has shape {:?}, expected 4 dims",
                weight.shape
            )));
        };
        let (gamma, beta) = (self.weights.get(&format!("{bn}.weight"))?, self.weights.get(&format!("{bn}.bias"))?);
        let (mean, var) =
            (self.weights.get(&format!("{bn}.running_mean"))?, self.weights.get(&format!("{bn}.running_var"))?);
        let bias = self.weights.0.get(&format!("{conv}.bias"));
        let per_filter = per_group * kh * kw;
        let mut folded = Vec::with_capacity(weight.values.len());
        let mut folded_bias = Vec::with_capacity(out);
        for o in 0..out {
            let scale = gamma.values[o] / (var.values[o] + BN_EPSILON).sqrt();
            folded.extend(weight.values[o * per_filter..(o + 1) * per_filter].iter().map(|w| (w * scale) as f32));
            let conv_bias = bias.map_or(0.0, |b| b.values[o]);
            folded_bias.push(((conv_bias - mean.values[o]) * scale + beta.values[o]) as f32);
        }
        let dims = [out as i64, per_group as i64, kh as i64, kw as i64];
        let (weight_name, bias_name) = (format!("{conv}.weight"), format!("{conv}.bias"));
        self.initializers.push(graph::float_tensor(&weight_name, &dims, &folded));
        self.initializers.push(graph::float_tensor(&bias_name, &[out as i64], &folded_bias));
        let in_channels = self.channels.get(input).copied().unwrap_or(3);
        let attributes = vec![
            graph::attr_ints("kernel_shape", &[kh as i64, kw as i64]),
            graph::attr_ints("strides", &[stride, stride]),
            graph::attr_ints(
                "pads",
                &[(kh as i64 - 1) / 2, (kw as i64 - 1) / 2, (kh as i64 - 1) / 2, (kw as i64 - 1) / 2],
            ),
            graph::attr_int("group", (in_channels / per_group.max(1)) as i64),
        ];
        let output = conv.to_owned();
        self.node("Conv", &[input, &weight_name, &bias_name], &output, attributes);
        self.channels.insert(output.clone(), out);
        Ok(output)
    }

    fn relu(&mut self, input: &str, output: &str) -> String {
        self.node("Relu", &[input], output, vec![]);
        if let Some(&channels) = self.channels.get(input) {
            self.channels.insert(output.to_owned(), channels);
        }
        output.to_owned()
    }

    /// One residual block; returns its output.
    fn block(&mut self, input: &str, prefix: &str, stride: i64, bottleneck: bool) -> Result<String, ModelError> {
        let mut x = self.conv_bn(
            input,
            &format!("{prefix}.conv1"),
            &format!("{prefix}.bn1"),
            if bottleneck { 1 } else { stride },
        )?;
        x = self.relu(&x, &format!("{prefix}.relu1"));
        x = self.conv_bn(
            &x,
            &format!("{prefix}.conv2"),
            &format!("{prefix}.bn2"),
            if bottleneck { stride } else { 1 },
        )?;
        if bottleneck {
            x = self.relu(&x, &format!("{prefix}.relu2"));
            x = self.conv_bn(&x, &format!("{prefix}.conv3"), &format!("{prefix}.bn3"), 1)?;
        }
        let shortcut = if self.weights.has(&format!("{prefix}.downsample.0.weight")) {
            self.conv_bn(input, &format!("{prefix}.downsample.0"), &format!("{prefix}.downsample.1"), stride)?
        } else {
            input.to_owned()
        };
        let sum = format!("{prefix}.add");
        self.node("Add", &[&x, &shortcut], &sum, vec![]);
        self.channels.insert(sum.clone(), self.channels.get(&x).copied().unwrap_or(0));
        Ok(self.relu(&sum, &format!("{prefix}.out")))
    }
}

/// The forward graph of the ResNet whose torchvision state dict `bytes` holds, for square inputs
/// of `input_size` pixels.
pub(super) fn resnet_from_safetensors(bytes: &[u8], input_size: u32) -> Result<ModelProto, ModelError> {
    let weights = StateDict::read(bytes)?;
    let bottleneck = weights.has("layer1.0.conv3.weight");
    let mut builder =
        Builder { weights: &weights, nodes: Vec::new(), initializers: Vec::new(), channels: HashMap::new() };
    let stem = builder.conv_bn("input", "conv1", "bn1", 2)?;
    let stem = builder.relu(&stem, "relu");
    let pool = vec![
        graph::attr_ints("kernel_shape", &[3, 3]),
        graph::attr_ints("strides", &[2, 2]),
        graph::attr_ints("pads", &[1, 1, 1, 1]),
    ];
    builder.node("MaxPool", &[&stem], "maxpool", pool);
    builder.channels.insert("maxpool".into(), builder.channels.get(&stem).copied().unwrap_or(0));
    let mut x = "maxpool".to_owned();
    for stage in 1..=4 {
        let blocks = weights.blocks(stage);
        if blocks == 0 {
            return Err(ModelError::Safetensors(format!(
                "the state dict has no `layer{stage}` blocks; not a torchvision ResNet"
            )));
        }
        for block in 0..blocks {
            let stride = if stage > 1 && block == 0 { 2 } else { 1 };
            x = builder.block(&x, &format!("layer{stage}.{block}"), stride, bottleneck)?;
        }
    }
    builder.node("GlobalAveragePool", &[&x], "avgpool", vec![]);
    builder.node("Flatten", &["avgpool"], "flatten", vec![graph::attr_int("axis", 1)]);
    let fc = weights.get("fc.weight")?;
    let fc_bias = weights.get("fc.bias")?;
    let classes = fc.shape.first().copied().unwrap_or(0) as i64;
    let fc_dims: Vec<i64> = fc.shape.iter().map(|&d| d as i64).collect();
    let as_f32 = |w: &Weight| w.values.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    builder.initializers.push(graph::float_tensor("fc.weight", &fc_dims, &as_f32(fc)));
    builder.initializers.push(graph::float_tensor("fc.bias", &[classes], &as_f32(fc_bias)));
    builder.node("Gemm", &["flatten", "fc.weight", "fc.bias"], "logits", vec![graph::attr_int("transB", 1)]);

    let size = Some(i64::from(input_size));
    let graph = GraphProto {
        node: builder.nodes,
        name: Some("torchvision_resnet".into()),
        initializer: builder.initializers,
        input: vec![graph::tensor_value("input", graph::DataType::Float, Some(&[None, Some(3), size, size]))],
        output: vec![graph::tensor_value("logits", graph::DataType::Float, Some(&[None, Some(classes)]))],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("explaind (torchvision safetensors)".into()),
        graph: Some(graph),
        ..Default::default()
    })
}
