//! The seed corpora of the fuzz targets (`tests/fuzz/`): for `model`, eight small CNNs of
//! `explain_tests::graphs` (every non-ResNet op the augmenter knows, one it does not, and module
//! scopes in node names) and
//! their tensors' shapes as ONNX Runtime measures them, which the target hands to the augmenter;
//! for `request`, requests using every method and option; for `chunks`, a tensor in pieces.
//! (`image` starts from `tests/corpus/images/`.) Seeds live in `tests/fuzz/seeds/`, apart from
//! the corpora fuzzing grows and minimises (`tests/fuzz/corpus/`). The committed files must be
//! what this test makes: `EXPLAIN_WRITE_FUZZ_SEEDS=1` rewrites them.

use std::collections::BTreeMap;

use explain_client::proto;
use explain_service::{engine, model::Model};
use explain_tests::{graphs, ort_library, workspace};
use prost::Message;

#[test]
fn the_committed_fuzz_seeds_are_current() {
    let fuzz = workspace().join("tests/fuzz");
    let ort = explain_service::config::default_serve_config().serve_options().load.ort;
    let ort = engine::OrtOptions { library: ort_library(), ..ort };
    let mut shapes = BTreeMap::new();
    let mut seeds = Vec::new();
    let models = [
        ("random_cnn", graphs::random_cnn(7)),
        ("smooth_cnn", graphs::smooth_cnn(3)),
        ("layout_cnn", graphs::layout_cnn(5)),
        ("scoped_cnn", graphs::scoped_cnn()),
        ("gelu_cnn", graphs::gelu_cnn(4)),
        ("resize_cnn", graphs::resize_cnn(6)),
        ("stem_cnn", graphs::stem_cnn(8)),
        ("round_cnn", graphs::cnn_without_gradient_rule()),
    ];
    for (name, proto) in models {
        let bytes = proto.encode_to_vec();
        let model = Model::from_onnx(name, &bytes, None).expect("a seed model loads");
        let (height, width) = (model.input.height as usize, model.input.width as usize);
        let measured = engine::measure_shapes(&ort, &model.probe_graph().encode_to_vec(), [1, 3, height, width])
            .expect("shapes measured");
        shapes.extend(measured);
        seeds.push((fuzz.join(format!("seeds/model/{name}.onnx")), bytes));
    }
    for (name, request) in requests() {
        seeds.push((fuzz.join(format!("seeds/request/{name}.pb")), request.encode_to_vec()));
    }
    seeds.push((fuzz.join("seeds/chunks/pieces.pb"), chunks()));
    let shapes = serde_json::to_string_pretty(&shapes).expect("JSON") + "\n";
    seeds.push((fuzz.join("seeds/shapes.json"), shapes.into_bytes()));
    let write = std::env::var_os("EXPLAIN_WRITE_FUZZ_SEEDS").is_some();
    for (path, bytes) in seeds {
        if write {
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
            std::fs::write(&path, &bytes).expect("write seed");
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(committed == bytes, "{} is stale: rerun with EXPLAIN_WRITE_FUZZ_SEEDS=1", path.display());
    }
}

/// Requests that reach every validation path: each method with options, layers with channel
/// selections, tensors, rendering.
fn requests() -> Vec<(&'static str, proto::ExplainRequest)> {
    use proto::attribution_spec::Method;
    let method = |method| proto::AttributionSpec { method: Some(method) };
    let image = explain_tests::encoded_image(explain_tests::sample_png(8));
    let tensor = explain_tests::tensor_image(&explain_tests::array(&[1, 3, 64, 64], vec![0.25; 3 * 64 * 64]));
    let base = proto::ExplainRequest { image: Some(image), top_k: 3, ..Default::default() };
    let baseline = |kind| Some(proto::Baseline { kind: Some(kind) });
    vec![
        (
            "methods",
            proto::ExplainRequest {
                target: Some(proto::Target { kind: Some(proto::target::Kind::ClassIndex(3)) }),
                objective: proto::Objective::CrossEntropy as i32,
                attributions: vec![
                    method(Method::Saliency(proto::Saliency { absolute: true })),
                    method(Method::InputXGradient(proto::InputXGradient {})),
                    method(Method::GradCam(proto::GradCam {
                        layer: "layer4.1".into(),
                        upsample: true,
                        ..Default::default()
                    })),
                    method(Method::GuidedBackprop(proto::GuidedBackprop {})),
                    method(Method::IntegratedGradients(proto::IntegratedGradients {
                        steps: 8,
                        baseline: baseline(proto::baseline::Kind::Blurred(proto::BaselineBlurred { sigma: 5.0 })),
                    })),
                    method(Method::SmoothGrad(proto::SmoothGrad { samples: 4, noise_level: 0.1, seed: 3, variant: 2 })),
                ],
                ..base.clone()
            },
        ),
        (
            "layers",
            proto::ExplainRequest {
                feature_maps: vec![
                    proto::FeatureMapSpec {
                        layer: "layer2.1".into(),
                        channels: Some(proto::feature_map_spec::Channels::TopK(4)),
                        ..Default::default()
                    },
                    proto::FeatureMapSpec {
                        layer: "conv1".into(),
                        quantity: proto::LayerQuantity::Gradient as i32,
                        channels: Some(proto::feature_map_spec::Channels::ChannelList(proto::ChannelList {
                            indices: vec![0, 5],
                        })),
                    },
                ],
                encoding: proto::DataType::Uint8 as i32,
                render: Some(proto::RenderSpec {
                    heatmaps: true,
                    feature_map_grids: true,
                    grid_columns: 4,
                    grid_rows: 2,
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "deep_lift",
            proto::ExplainRequest {
                attributions: vec![method(Method::DeepLift(proto::DeepLift {
                    baseline: baseline(proto::baseline::Kind::Black(proto::BaselineBlack {})),
                }))],
                ..base.clone()
            },
        ),
        ("tensor", proto::ExplainRequest { image: Some(tensor), ..Default::default() }),
    ]
}

/// Three length-delimited chunks of one float32 tensor, out of order.
fn chunks() -> Vec<u8> {
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let chunk = |offset: usize, end: usize| proto::TensorChunk {
        name: "activation/conv1".into(),
        shape: vec![1, 2, 3],
        dtype: proto::DataType::Float32 as i32,
        offset: offset as u64,
        total_bytes: 24,
        data: data[offset..end].to_vec().into(),
        channel_indices: vec![4, 1],
        ..Default::default()
    };
    [chunk(8, 24), chunk(0, 8)].iter().flat_map(Message::encode_length_delimited_to_vec).collect()
}
