//! Serving behaviour: model info, labels and targets, classification, channel selection,
//! encodings, chunking, and a graceful shutdown that lets an open stream finish.

use explain_client::{Client, proto};
use explain_service::model::ModelSource;
use explain_tests::{TestServer, encoded_image, feature_map, options, relative_l2, sample_png, tiny_model};

fn request(feature_maps: Vec<proto::FeatureMapSpec>) -> proto::ExplainRequest {
    proto::ExplainRequest { image: Some(encoded_image(sample_png(100))), feature_maps, ..Default::default() }
}

fn channels(selection: proto::feature_map_spec::Channels) -> proto::FeatureMapSpec {
    proto::FeatureMapSpec { channels: Some(selection), ..feature_map("layer1.1") }
}

#[tokio::test]
async fn model_info_describes_the_embedded_model() {
    let server = TestServer::with_model(ModelSource::Embedded).await;
    let info = server.client.model_info().await.expect("info");
    assert_eq!(info.name, "default");
    assert_eq!(info.num_classes, 10);
    assert_eq!(info.execution_provider, "CPUExecutionProvider");
    assert_eq!(info.layer_naming, proto::LayerNaming::Resnet as i32);
    let input = info.input.expect("input");
    assert_eq!(input.shape, [-1, 3, 112, 112]);
    assert_eq!(input.resize_size, 128);
    let layers: Vec<(&str, &[i64])> = info.layers.iter().map(|l| (l.name.as_str(), l.shape.as_slice())).collect();
    assert_eq!(layers[0], ("conv1", &[-1, 16, 56, 56][..]));
    assert_eq!(layers[5], ("layer2.1", &[-1, 32, 14, 14][..]), "the brief's 4 × 8 grid");
    assert_eq!(layers[10], ("avgpool", &[-1, 128][..]));
    let shapes = ["circle", "square", "triangle", "star", "cross", "ring", "ellipse", "hexagon", "heart", "arrow"];
    assert_eq!(info.labels, shapes, "the embedded model's own labels");
    assert!(info.gradients_available);
    assert_eq!(info.methods.len(), 14, "every method: {:?}", info.methods);
    assert!(info.methods.iter().any(|m| m == "grad_cam") && info.methods.iter().any(|m| m == "occlusion"));
}

/// A model that is not a ResNet but records its PyTorch modules (as the legacy exporter does for
/// MobileNet or EfficientNet): layers are named by module path, functional pooling by its tensor,
/// and Grad-CAM's default layer is the last spatial block.
#[tokio::test]
async fn a_non_resnet_export_names_its_layers_by_pytorch_module() {
    let path = explain_tests::write_model(&explain_tests::graphs::scoped_cnn(), "scoped-cnn");
    let server = TestServer::with_model(ModelSource::File(path)).await;
    let info = server.client.model_info().await.expect("info");
    assert_eq!(info.layer_naming, proto::LayerNaming::ModulePaths as i32);
    let layers: Vec<(&str, &[i64])> = info.layers.iter().map(|l| (l.name.as_str(), l.shape.as_slice())).collect();
    assert_eq!(
        layers,
        [
            ("features.0", &[-1, 4, 16, 16][..]),
            ("features.1", &[-1, 6, 8, 8][..]),
            ("pooled", &[-1, 6, 1, 1][..]),
            ("flat", &[-1, 6][..])
        ]
    );
    let image = explain_tests::array(&[1, 3, 16, 16], explain_tests::graphs::Random::new(2).values(768, 1.0));
    let request = proto::ExplainRequest {
        image: Some(explain_tests::tensor_image(&image)),
        attributions: vec![proto::AttributionSpec {
            method: Some(proto::attribution_spec::Method::GradCam(proto::GradCam::default())),
        }],
        feature_maps: vec![feature_map("features.0")],
        ..Default::default()
    };
    let explanation = server.client.send(request).await.expect("explain");
    let names: Vec<&str> = explanation.tensors.keys().map(String::as_str).collect();
    assert!(names.contains(&"attribution/grad_cam/features.1"), "{names:?}");
    assert_eq!(explanation.tensors["attribution/grad_cam/features.1"].array.shape(), [1, 1, 8, 8]);
    assert_eq!(explanation.tensors["activation/features.0"].array.shape(), [1, 4, 16, 16]);
}

#[tokio::test]
async fn labels_name_classes_and_targets() {
    let labels = std::env::temp_dir().join(format!("explain-labels-{}.txt", std::process::id()));
    std::fs::write(&labels, (0..10).map(|i| format!("class {i}\n")).collect::<String>()).expect("write labels");
    let mut settings = options(tiny_model());
    settings.load.labels = Some(labels.clone());
    let server = TestServer::start(settings).await;
    std::fs::remove_file(&labels).expect("remove labels");

    let info = server.client.model_info().await.expect("info");
    assert_eq!(info.labels[3], "class 3");
    let by_label = proto::ExplainRequest {
        target: Some(proto::Target { kind: Some(proto::target::Kind::Label("class 7".into())) }),
        objective: proto::Objective::CrossEntropy as i32,
        ..request(vec![])
    };
    let prediction = server.client.send(by_label).await.expect("explain").prediction;
    let target = prediction.target.expect("target");
    assert_eq!((target.index, target.label.as_str()), (7, "class 7"));
    assert_eq!(prediction.objective, proto::Objective::CrossEntropy as i32);

    let unknown = proto::ExplainRequest {
        target: Some(proto::Target { kind: Some(proto::target::Kind::Label("class 70".into())) }),
        ..request(vec![])
    };
    assert!(server.client.send(unknown).await.is_err());
}

#[tokio::test]
async fn classify_returns_sorted_top_k_that_sums_below_one() {
    let server = TestServer::with_model(tiny_model()).await;
    let response =
        server.client.classify(proto::ClassifyRequest { image: Some(encoded_image(sample_png(64))), top_k: 4 }).await;
    let prediction = response.expect("classify").prediction.expect("prediction");
    assert_eq!(prediction.top_classes.len(), 4);
    assert!(prediction.top_classes.windows(2).all(|pair| pair[0].probability >= pair[1].probability));
    assert_eq!(prediction.target.expect("target").index, prediction.top_classes[0].index);
    let sum: f32 = prediction.top_classes.iter().map(|c| c.probability).sum();
    assert!(sum > 0.0 && sum <= 1.0 + 1e-6);
}

#[tokio::test]
async fn channel_selection_and_encodings_agree_with_the_full_float32_tensor() {
    use proto::feature_map_spec::Channels;
    let server = TestServer::with_model(tiny_model()).await;
    let full = server.client.send(request(vec![feature_map("layer1.1")])).await.expect("full");
    let full = &full.tensors["activation/layer1.1"].array;

    let listed = server
        .client
        .send(request(vec![channels(Channels::ChannelList(proto::ChannelList { indices: vec![5, 0, 2] }))]))
        .await
        .expect("list");
    let listed = &listed.tensors["activation/layer1.1"];
    assert_eq!(listed.channel_indices, [5, 0, 2]);
    assert_eq!(listed.array, full.select(ndarray::Axis(1), &[5, 0, 2]));

    let top = server.client.send(request(vec![channels(Channels::TopK(3))])).await.expect("top-k");
    let top = &top.tensors["activation/layer1.1"];
    let mean = |c: usize| full.index_axis(ndarray::Axis(1), c).mean().expect("non-empty");
    let mut by_mean: Vec<usize> = (0..8).collect();
    by_mean.sort_by(|&a, &b| mean(b).total_cmp(&mean(a)));
    assert_eq!(top.channel_indices, by_mean[..3].iter().map(|&c| c as u32).collect::<Vec<_>>());

    for (encoding, tolerance) in
        [(proto::DataType::Float16, 1e-3), (proto::DataType::Bfloat16, 8e-3), (proto::DataType::Uint8, 1e-2)]
    {
        let encoded = proto::ExplainRequest { encoding: encoding as i32, ..request(vec![feature_map("layer1.1")]) };
        let encoded = server.client.send(encoded).await.expect("encoded");
        let tensor = &encoded.tensors["activation/layer1.1"];
        assert_eq!(tensor.dtype, encoding);
        let error = relative_l2(&tensor.array, full);
        assert!(error < tolerance, "{encoding:?}: relative L2 {error:e}");
    }
}

#[tokio::test]
async fn small_chunks_reassemble_exactly() {
    let mut settings = options(tiny_model());
    settings.max_chunk_bytes = 1000;
    let mut server = TestServer::start(settings).await;
    let mut stream =
        server.client.raw().explain(request(vec![feature_map("conv1")])).await.expect("explain").into_inner();
    let mut offsets = Vec::new();
    while let Some(message) = stream.message().await.expect("stream") {
        if let Some(proto::explain_response::Item::TensorChunk(chunk)) = message.item {
            assert!(chunk.data.len() <= 1000);
            assert_eq!(chunk.total_bytes, 8 * 32 * 32 * 4);
            offsets.push(chunk.offset);
        }
    }
    assert_eq!(offsets, (0..33).map(|i| i * 1000).collect::<Vec<u64>>());

    let reference = TestServer::with_model(tiny_model()).await;
    let small = server.client.send(request(vec![feature_map("conv1")])).await.expect("small chunks");
    let large = reference.client.send(request(vec![feature_map("conv1")])).await.expect("one chunk");
    assert_eq!(small.tensors["activation/conv1"], large.tensors["activation/conv1"]);
}

#[tokio::test]
async fn shutdown_drains_an_open_stream_then_refuses_new_calls() {
    let mut settings = options(tiny_model());
    settings.max_chunk_bytes = 256;
    let TestServer { server, mut client } = TestServer::start(settings).await;
    let address = server.local_addr();
    let mut stream = client.raw().explain(request(vec![feature_map("conv1")])).await.expect("explain").into_inner();
    let first = stream.message().await.expect("first message").expect("a message");
    assert!(matches!(first.item, Some(proto::explain_response::Item::Prediction(_))));

    // 128 chunks wait behind a 4-message buffer: the call is in flight while shutdown begins.
    let shutdown = tokio::spawn(server.shutdown());
    let mut rest = 0;
    let mut summary = false;
    while let Some(message) = stream.message().await.expect("the open stream finishes") {
        rest += 1;
        summary |= matches!(message.item, Some(proto::explain_response::Item::Summary(_)));
    }
    assert_eq!(rest, 128 + 1);
    assert!(summary);
    shutdown.await.expect("shutdown task").expect("clean shutdown");
    assert!(Client::connect(format!("http://{address}")).await.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn a_model_that_cannot_load_stops_the_server_with_the_reason() {
    let missing = std::env::temp_dir().join("explain-no-such-model.onnx");
    let mut server = explain_service::server::start(options(ModelSource::File(missing))).await.expect("binds");
    let reason = server.ready().await.expect_err("the model is missing");
    assert!(reason.contains("cannot read model file") && reason.contains("explain-no-such-model.onnx"), "{reason}");
    let error = server.wait().await.expect_err("serving stops");
    assert!(error.to_string().contains("cannot load the model"), "{error}");

    let not_onnx = std::env::temp_dir().join(format!("explain-not-onnx-{}.onnx", std::process::id()));
    std::fs::write(&not_onnx, b"this is not a protobuf").expect("write");
    let mut server = explain_service::server::start(options(ModelSource::File(not_onnx.clone()))).await.expect("binds");
    let reason = server.ready().await.expect_err("not a model");
    std::fs::remove_file(&not_onnx).expect("remove");
    assert!(reason.contains("not an ONNX model"), "{reason}");
}

#[tokio::test]
async fn the_server_renders_heatmaps_and_feature_map_grids() {
    use proto::attribution_spec::Method;
    let server = TestServer::with_model(tiny_model()).await;
    let request = proto::ExplainRequest {
        attributions: vec![
            proto::AttributionSpec { method: Some(Method::Saliency(proto::Saliency { absolute: false })) },
            proto::AttributionSpec {
                method: Some(Method::GradCam(proto::GradCam {
                    layer: "layer4.1".into(),
                    upsample: false,
                    ..Default::default()
                })),
            },
        ],
        render: Some(proto::RenderSpec {
            heatmaps: true,
            feature_map_grids: true,
            color_map: proto::ColorMap::Inferno as i32,
            ..Default::default()
        }),
        ..request(vec![feature_map("layer2.1")])
    };
    let explanation = server.client.send(request).await.expect("explain");
    let names: Vec<&str> = explanation.images.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["render/activation/layer2.1", "render/attribution/grad_cam/layer4.1", "render/attribution/saliency"]
    );
    for (name, rendered) in &explanation.images {
        let picture = image::load_from_memory(&rendered.png).expect("a PNG").to_rgb8();
        assert_eq!((picture.width(), picture.height()), (rendered.width, rendered.height), "{name}");
        let distinct: std::collections::BTreeSet<[u8; 3]> = picture.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 8, "{name} is not constant");
    }
    // Heatmaps cover the 64×64 model view; layer2.1's 16 maps of 8×8, enlarged to 64-pixel tiles,
    // fill 2 rows of the default 8 columns.
    assert_eq!(explanation.images["render/attribution/saliency"].width, 64);
    let grid = &explanation.images["render/activation/layer2.1"];
    assert_eq!((grid.width, grid.height), (8 * 66 + 2, 2 * 66 + 2));
}

/// Ablation-CAM's tail graph is made from the model file read again on first use: when the file
/// has changed since the server loaded it, the call fails with FAILED_PRECONDITION saying so, and
/// the server goes on serving everything else.
#[tokio::test]
async fn a_tail_graph_is_not_made_from_a_model_file_that_changed() {
    use proto::attribution_spec::Method;
    let dir = explain_tests::temp_dir("changed-model");
    let path = dir.join("model.onnx");
    std::fs::copy(explain_tests::fixture("tiny_resnet18_w8.legacy.onnx"), &path).expect("copy the model");
    let server = TestServer::with_model(ModelSource::File(path.clone())).await;
    std::fs::copy(explain_tests::fixture("tiny_resnet18_w8.dynamo.onnx"), &path).expect("replace the model");
    let ablation = proto::AttributionSpec {
        method: Some(Method::AblationCam(proto::AblationCam { layer: "layer4.1".into(), upsample: false })),
    };
    let ablated = proto::ExplainRequest { attributions: vec![ablation], ..request(Vec::new()) };
    let status = match server.client.send(ablated).await {
        Err(explain_client::Error::Status(status)) => status,
        other => panic!("expected a status, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("changed since it was loaded"), "{status:?}");
    server.client.send(request(vec![feature_map("layer4.1")])).await.expect("still serving");
    std::fs::remove_dir_all(&dir).expect("remove the folder");
}
