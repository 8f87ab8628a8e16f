//! Request validation: any bytes decoded as an `ExplainRequest` or a `ClassifyRequest` give a job
//! within the limits or an INVALID_ARGUMENT-style error, never a panic.
#![no_main]

use explain_proto::v1 as pb;
use explain_service::{
    api,
    explain::{GradientSupport, LayerInfo, Limits, ModelInfo},
    model::{InputTensor, layers::Naming},
    preprocess::{IMAGENET_MEAN, IMAGENET_STD, ImageLimits, Preprocessing},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// What the tiny test model (`tests/fixtures/tiny_resnet18_w8`) reports: a ResNet-18 of widths
/// 8–64, 10 classes, 64 × 64.
fn info() -> ModelInfo {
    let spatial = [
        ("conv1", 8, 32),
        ("maxpool", 8, 16),
        ("layer1.0", 8, 16),
        ("layer1.1", 8, 16),
        ("layer2.0", 16, 8),
        ("layer2.1", 16, 8),
        ("layer3.0", 32, 4),
        ("layer3.1", 32, 4),
        ("layer4.0", 64, 2),
        ("layer4.1", 64, 2),
    ];
    let mut layers: Vec<LayerInfo> = spatial
        .iter()
        .map(|&(name, channels, side)| LayerInfo {
            name: name.into(),
            tensor: format!("{name}_out"),
            shape: vec![channels, side, side],
            tail_unavailable: None,
        })
        .collect();
    layers.push(LayerInfo {
        name: "avgpool".into(),
        tensor: "avgpool_out".into(),
        shape: vec![64],
        tail_unavailable: Some("not spatial".into()),
    });
    ModelInfo {
        name: "fuzz".into(),
        sha256: String::new(),
        input: InputTensor { name: "input".into(), height: 64, width: 64 },
        preprocessing: Preprocessing { height: 64, width: 64, resize_size: 73, mean: IMAGENET_MEAN, std: IMAGENET_STD },
        logits: "logits".into(),
        layers,
        naming: Naming::ResNet,
        num_classes: 10,
        labels: Some((0..10).map(|i| format!("class {i}")).collect()),
        execution_provider: "CPUExecutionProvider".into(),
        gradients: GradientSupport::Available,
        head_layer: Some(9),
    }
}

const LIMITS: Limits =
    Limits { image: ImageLimits { max_bytes: 1 << 20, max_pixels: 4_000_000 }, max_rows_per_request: 512 };

fuzz_target!(|data: &[u8]| {
    let info = info();
    if let Ok(request) = pb::ExplainRequest::decode(data)
        && let Ok(job) = api::explain_job(request, &info, &LIMITS)
    {
        assert!(job.rows() <= LIMITS.max_rows_per_request, "admitted {} rows", job.rows());
    }
    if let Ok(request) = pb::ClassifyRequest::decode(data) {
        let _ = api::classify_job(request, &info);
    }
});
