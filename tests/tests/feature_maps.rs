//! Feature maps through a real server match torch: every layer of the tiny ResNet-18 (both
//! exports, and its torchvision weights as safetensors), and `layer2.1` of the full ResNet-18, within 1e-5 relative L2; logits and
//! probabilities too.

use explain_client::proto;
use explain_service::model::ModelSource;
use explain_service::server::ServeOptions;
use explain_tests::{Refs, TestServer, feature_map, fixture, options, relative_l2, shared_fixtures, tensor_image};

const LAYERS: [&str; 11] = [
    "conv1", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1",
    "avgpool",
];

async fn every_layer_matches(settings: ServeOptions) {
    let model = format!("{:?}", settings.load.model);
    let server = TestServer::start(settings).await;
    let refs = Refs::load(&fixture("tiny_resnet18_w8.refs.npz"));
    for image in 0..refs.images() {
        let request = proto::ExplainRequest {
            image: Some(tensor_image(&refs.row("input", image))),
            feature_maps: LAYERS.iter().map(|layer| feature_map(layer)).collect(),
            top_k: 10,
            ..Default::default()
        };
        let explanation = server.client.send(request).await.expect("explain");
        for layer in LAYERS {
            let actual = &explanation.tensors[&format!("activation/{layer}")];
            let error = relative_l2(&actual.array, &refs.row(&format!("act.{layer}"), image));
            assert!(error < 1e-5, "{model} image {image} {layer}: relative L2 {error:e}");
            assert!(actual.channel_indices.is_empty(), "all channels, in order");
        }
        let mut classes = explanation.prediction.top_classes.clone();
        assert_eq!(classes.len(), 10);
        classes.sort_by_key(|class| class.index);
        let logits = explain_tests::array(&[1, 10], classes.iter().map(|c| c.logit).collect());
        let probabilities = explain_tests::array(&[1, 10], classes.iter().map(|c| c.probability).collect());
        assert!(relative_l2(&logits, &refs.row("logits", image)) < 1e-5, "{model} image {image} logits");
        assert!(
            relative_l2(&probabilities, &refs.row("probabilities", image)) < 1e-5,
            "{model} image {image} probabilities"
        );
    }
}

#[tokio::test]
async fn dynamo_export_activations_match_torch() {
    every_layer_matches(options(ModelSource::File(fixture("tiny_resnet18_w8.dynamo.onnx")))).await;
}

#[tokio::test]
async fn legacy_export_activations_match_torch() {
    every_layer_matches(options(ModelSource::File(fixture("tiny_resnet18_w8.legacy.onnx")))).await;
}

#[tokio::test]
async fn safetensors_weights_activations_match_torch() {
    let mut settings = options(ModelSource::File(fixture("tiny_resnet18_w8.safetensors")));
    settings.load.input_size = Some(64);
    every_layer_matches(settings).await;
}

#[tokio::test]
async fn full_resnet18_layer2_1_matches_torch_and_streams_in_one_mib_chunks() {
    let Some([model, refs]) = shared_fixtures(["resnet18_seed1.legacy.onnx", "resnet18_seed1.refs.npz"]) else {
        return;
    };
    let mut server = TestServer::with_model(ModelSource::File(model)).await;
    let refs = Refs::load(&refs);
    let request = proto::ExplainRequest {
        image: Some(tensor_image(&refs.row("input", 0))),
        feature_maps: vec![feature_map("layer2.1"), feature_map("conv1")],
        ..Default::default()
    };

    // The raw stream: conv1 is 64×112×112 float32 = 3.2 MB, so it must arrive in several chunks.
    let mut stream = server.client.raw().explain(request.clone()).await.expect("explain").into_inner();
    let mut conv1_chunks = 0;
    while let Some(message) = stream.message().await.expect("stream") {
        if let Some(proto::explain_response::Item::TensorChunk(chunk)) = message.item {
            assert!(chunk.data.len() <= 1 << 20, "chunk of {} bytes", chunk.data.len());
            if chunk.name == "activation/conv1" {
                conv1_chunks += 1;
                assert_eq!(chunk.total_bytes, 64 * 112 * 112 * 4);
            }
        }
    }
    assert_eq!(conv1_chunks, 4, "3,211,264 bytes in chunks of at most 1 MiB");

    let explanation = server.client.send(request).await.expect("explain");
    let actual = &explanation.tensors["activation/layer2.1"];
    assert_eq!(actual.array.shape(), &[1, 128, 28, 28]);
    let error = relative_l2(&actual.array, &refs.row("act.layer2.1", 0));
    assert!(error < 1e-5, "layer2.1: relative L2 {error:e}");
    let error = relative_l2(&explanation.tensors["activation/conv1"].array, &refs.row("act.conv1", 0));
    assert!(error < 1e-5, "conv1: relative L2 {error:e}");
}
