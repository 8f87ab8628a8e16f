//! Domain results to protobuf messages: model info, predictions, tensor chunks, summaries.

use std::time::Duration;

use crate::{
    explain::{ClassScore, Encoding, Faithfulness, METHODS, ModelInfo, NamedTensor, Objective, Prediction, Stats},
    model::layers::Naming,
};
use explain_proto::{
    codec::{self, Encoded},
    v1 as pb,
};
use ndarray::ArrayD;

/// `GetModelInfoResponse` for `info`.
pub fn model_info(info: &ModelInfo) -> pb::GetModelInfoResponse {
    let preprocessing = &info.preprocessing;
    pb::GetModelInfoResponse {
        name: info.name.clone(),
        sha256: info.sha256.clone(),
        input: Some(pb::InputSpec {
            name: info.input.name.clone(),
            shape: vec![-1, 3, i64::from(info.input.height), i64::from(info.input.width)],
            mean: preprocessing.mean.to_vec(),
            std: preprocessing.std.to_vec(),
            resize_size: preprocessing.resize_size,
        }),
        layers: info
            .layers
            .iter()
            .map(|layer| pb::LayerInfo {
                name: layer.name.clone(),
                shape: std::iter::once(-1).chain(layer.shape.iter().map(|&d| d as i64)).collect(),
                tensor: layer.tensor.clone(),
            })
            .collect(),
        layer_naming: match info.naming {
            Naming::ResNet => pb::LayerNaming::Resnet,
            Naming::TensorNames => pb::LayerNaming::TensorNames,
            Naming::ModulePaths => pb::LayerNaming::ModulePaths,
        } as i32,
        num_classes: info.num_classes as u32,
        labels: info.labels.clone().unwrap_or_default(),
        execution_provider: info.execution_provider.clone(),
        gradients_available: info.gradients.unavailable().is_none(),
        gradients_unavailable_reason: info.gradients.unavailable().unwrap_or_default().to_owned(),
        methods: METHODS
            .iter()
            .filter(|(_, needs_gradients)| info.gradients.unavailable().is_none() || !needs_gradients)
            .map(|(name, _)| (*name).to_owned())
            .collect(),
    }
}

/// `Faithfulness` message.
pub fn faithfulness(scores: &Faithfulness) -> pb::Faithfulness {
    let curve = |values: &[f64]| values.iter().map(|&v| v as f32).collect();
    pb::Faithfulness {
        attribution: scores.attribution.clone(),
        deletion_auc: scores.deletion_auc() as f32,
        insertion_auc: scores.insertion_auc() as f32,
        deletion_drop_at_quarter: scores.deletion_drop_at_quarter() as f32,
        deletion_curve: curve(&scores.deletion_curve),
        insertion_curve: curve(&scores.insertion_curve),
    }
}

fn class_score(score: &ClassScore, info: &ModelInfo) -> pb::ClassScore {
    pb::ClassScore {
        index: score.index as u32,
        label: info.label(score.index).to_owned(),
        probability: score.probability,
        logit: score.logit,
    }
}

/// `Prediction` message.
pub fn prediction(prediction: &Prediction, info: &ModelInfo) -> pb::Prediction {
    pb::Prediction {
        top_classes: prediction.top_classes.iter().map(|score| class_score(score, info)).collect(),
        target: Some(class_score(&prediction.target, info)),
        objective: match prediction.objective {
            Objective::Logit => pb::Objective::Logit,
            Objective::CrossEntropy => pb::Objective::CrossEntropy,
        } as i32,
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `Summary` message; `total` is the time since the request arrived.
pub fn summary(stats: &Stats, execution_provider: &str, tensors: usize, total: Duration) -> pb::Summary {
    pb::Summary {
        timings: Some(pb::Timings {
            preprocess_ms: milliseconds(stats.preprocess),
            queue_ms: milliseconds(stats.queued),
            inference_ms: milliseconds(stats.inference),
            postprocess_ms: milliseconds(stats.postprocess),
            total_ms: milliseconds(total),
        }),
        execution_provider: execution_provider.to_owned(),
        rows: stats.rows as u32,
        batch_size: stats.batch_size as u32,
        tensors: tensors as u32,
    }
}

fn data_type(encoding: Encoding) -> pb::DataType {
    match encoding {
        Encoding::Float32 => pb::DataType::Float32,
        Encoding::Float16 => pb::DataType::Float16,
        Encoding::BFloat16 => pb::DataType::Bfloat16,
        Encoding::Uint8 => pb::DataType::Uint8,
    }
}

/// The chunks of one tensor, each at most `max_chunk` bytes of data: the tensor is encoded once (a
/// float32 tensor in standard layout is sent as its own memory) and every chunk's data is a slice
/// of that buffer.
pub fn tensor_chunks(tensor: NamedTensor, encoding: Encoding, max_chunk: usize) -> Vec<pb::TensorChunk> {
    let dtype = data_type(encoding);
    let NamedTensor { name, tensor, channel_indices } = tensor;
    let dims = tensor.shape().to_vec();
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let Encoded { data, quantization } = codec::encode_owned(standard_vec(tensor), &dims, dtype);
    let channel_indices: Vec<u32> = channel_indices.iter().map(|&c| c as u32).collect();
    codec::chunks(&data, max_chunk)
        .map(|(offset, piece)| pb::TensorChunk {
            name: name.clone(),
            shape: shape.clone(),
            dtype: dtype as i32,
            channel_indices: channel_indices.clone(),
            offset: offset as u64,
            total_bytes: data.len() as u64,
            data: piece,
            quantization: quantization.clone(),
        })
        .collect()
}

/// The array's values in row-major order: its own buffer when it already is exactly that, a copy
/// otherwise.
fn standard_vec(array: ArrayD<f32>) -> Vec<f32> {
    if !array.is_standard_layout() {
        return array.iter().copied().collect();
    }
    let len = array.len();
    let (mut values, offset) = array.into_raw_vec_and_offset();
    let start = offset.unwrap_or(0);
    values.truncate(start + len);
    values.drain(..start);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(chunks: &[pb::TensorChunk]) -> Vec<f32> {
        let bytes: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.data.iter().copied()).collect();
        let shape: Vec<usize> = chunks[0].shape.iter().map(|&d| d as usize).collect();
        codec::decode(&bytes, &shape, pb::DataType::Float32, None).expect("decodes")
    }

    #[test]
    fn tensors_of_every_layout_are_sent_in_row_major_order() {
        use ndarray::{Array2, s};
        let full = Array2::from_shape_fn((4, 3), |(r, c)| (r * 10 + c) as f32);
        let cases = [
            ("whole", full.clone()),
            ("rows sliced off the front", full.clone().slice_move(s![1..3, ..])),
            ("transposed", full.clone().reversed_axes()),
            ("strided columns", full.clone().slice_move(s![.., ..;2])),
        ];
        for (case, array) in cases {
            let expected: Vec<f32> = array.iter().copied().collect();
            let tensor = NamedTensor { name: "t".into(), tensor: array.into_dyn(), channel_indices: Vec::new() };
            let chunks = tensor_chunks(tensor, Encoding::Float32, 8);
            assert!(chunks.len() > 1, "{case}: several chunks");
            assert_eq!(decoded(&chunks), expected, "{case}");
        }
    }

    #[test]
    fn the_method_list_names_every_field_of_attribution_spec() {
        let descriptors =
            <prost_types::FileDescriptorSet as prost::Message>::decode(explain_proto::FILE_DESCRIPTOR_SET)
                .expect("descriptor set");
        let file = descriptors.file.iter().find(|file| file.package() == "explain.v1").expect("explain.v1");
        let spec =
            file.message_type.iter().find(|message| message.name() == "AttributionSpec").expect("AttributionSpec");
        let mut fields: Vec<&str> = spec.field.iter().map(|field| field.name()).collect();
        let mut listed: Vec<&str> = METHODS.iter().map(|(name, _)| *name).collect();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, fields);
    }
}
