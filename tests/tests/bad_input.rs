//! Bad input gets INVALID_ARGUMENT naming the field (with `google.rpc.BadRequest` details), never
//! a panic, and the server keeps serving other callers meanwhile.

use explain_client::{Error, proto};
use explain_tests::{TestServer, array, encoded_image, feature_map, sample_png, tensor_image, tiny_model};
use tonic::Code;
use tonic_types::StatusExt;

fn explain_request(image: proto::Image, feature_maps: Vec<proto::FeatureMapSpec>) -> proto::ExplainRequest {
    proto::ExplainRequest { image: Some(image), feature_maps, ..Default::default() }
}

/// The status of a failed call, which must be INVALID_ARGUMENT naming `field` in its message and
/// in its BadRequest details.
fn assert_invalid(result: Result<explain_client::Explanation, Error>, field: &str) -> tonic::Status {
    let Err(Error::Status(status)) = result else { panic!("expected an error status, got {result:?}") };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with(&format!("{field}:")), "message `{}` should name `{field}`", status.message());
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("BadRequest details").field_violations;
    assert_eq!(violations[0].field, field);
    status
}

#[tokio::test]
async fn each_bad_field_is_named() {
    let mut server = TestServer::with_model(tiny_model()).await;
    let client = &mut server.client;
    let image = || encoded_image(sample_png(80));

    let empty = client.send(proto::ExplainRequest::default()).await;
    assert_invalid(empty, "image");

    let garbage = client.send(explain_request(encoded_image(b"GIF89a, or not".to_vec()), vec![])).await;
    assert_invalid(garbage, "image.encoded");

    let unknown = client.send(explain_request(image(), vec![feature_map("layer9.9")])).await;
    let status = assert_invalid(unknown, "feature_maps[0].layer");
    assert!(
        status.message().contains("conv1, maxpool, layer1.0") && status.message().contains("avgpool"),
        "{status:?}"
    );

    let wrong_shape = tensor_image(&array(&[1, 3, 32, 32], vec![0.0; 3 * 32 * 32]));
    assert_invalid(client.send(explain_request(wrong_shape, vec![])).await, "image.tensor.shape");

    let mut not_finite = vec![0.0; 3 * 64 * 64];
    not_finite[7] = f32::NAN;
    let not_finite = tensor_image(&array(&[1, 3, 64, 64], not_finite));
    assert_invalid(client.send(explain_request(not_finite, vec![])).await, "image.tensor.data");

    let out_of_range = proto::FeatureMapSpec {
        layer: "layer2.1".into(),
        channels: Some(proto::feature_map_spec::Channels::ChannelList(proto::ChannelList { indices: vec![3, 16] })),
        ..Default::default()
    };
    let status = assert_invalid(
        client.send(explain_request(image(), vec![out_of_range])).await,
        "feature_maps[0].channel_list.indices[1]",
    );
    assert!(status.message().contains("16 channels"), "{status:?}");

    let repeated = client.send(explain_request(image(), vec![feature_map("conv1"), feature_map("conv1")])).await;
    assert_invalid(repeated, "feature_maps[1]");

    let target = proto::ExplainRequest {
        target: Some(proto::Target { kind: Some(proto::target::Kind::ClassIndex(10)) }),
        ..explain_request(image(), vec![])
    };
    assert_invalid(client.send(target).await, "target.class_index");

    let classify = client.classify(proto::ClassifyRequest { image: None, top_k: 3 }).await;
    let Err(Error::Status(status)) = classify else { panic!("classify without an image must fail") };
    assert_eq!(status.code(), Code::InvalidArgument);

    // Still serving.
    let explanation = client.send(explain_request(image(), vec![feature_map("layer2.1")])).await.expect("serves");
    assert_eq!(explanation.tensors["activation/layer2.1"].array.shape(), &[1, 16, 8, 8]);
}

#[tokio::test]
async fn bad_callers_do_not_disturb_good_ones() {
    let server = TestServer::with_model(tiny_model()).await;
    let png = sample_png(64);
    let mut calls = Vec::new();
    for i in 0..24 {
        let client = server.client.clone();
        let png = png.clone();
        calls.push(tokio::spawn(async move {
            let image = if i % 2 == 0 { encoded_image(png) } else { encoded_image(vec![0xFF; 100]) };
            (i, client.send(explain_request(image, vec![feature_map("layer4.1")])).await)
        }));
    }
    for call in calls {
        let (i, result) = call.await.expect("task");
        match (i % 2, result) {
            (0, Ok(explanation)) => {
                assert_eq!(explanation.tensors["activation/layer4.1"].array.shape(), &[1, 64, 2, 2])
            }
            (1, Err(Error::Status(status))) => assert_eq!(status.code(), Code::InvalidArgument),
            (_, other) => panic!("call {i}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_attribution_options_are_named() {
    use proto::attribution_spec::Method;
    let mut server = TestServer::with_model(tiny_model()).await;
    let with = |attributions: Vec<Option<Method>>| proto::ExplainRequest {
        attributions: attributions.into_iter().map(|method| proto::AttributionSpec { method }).collect(),
        ..explain_request(encoded_image(sample_png(64)), vec![])
    };
    let ig = |steps| Some(Method::IntegratedGradients(proto::IntegratedGradients { steps, baseline: None }));
    let cam = |layer: &str| {
        Some(Method::GradCam(proto::GradCam { layer: layer.into(), upsample: false, ..Default::default() }))
    };
    let client = &mut server.client;

    assert_invalid(client.send(with(vec![None])).await, "attributions[0]");
    assert_invalid(client.send(with(vec![ig(0), ig(8)])).await, "attributions[1]");
    assert_invalid(client.send(with(vec![ig(1)])).await, "attributions[0].integrated_gradients.steps");
    let status = assert_invalid(client.send(with(vec![cam("avgpool")])).await, "attributions[0].grad_cam.layer");
    assert!(status.message().contains("[64]"), "{status:?}");
    assert_invalid(client.send(with(vec![cam("layer9")])).await, "attributions[0].grad_cam.layer");
    let ablation = Some(Method::AblationCam(proto::AblationCam { layer: "avgpool".into(), upsample: false }));
    assert_invalid(client.send(with(vec![ablation])).await, "attributions[0].ablation_cam.layer");
    let unknown_variant = Some(Method::GradCam(proto::GradCam { variant: 99, ..Default::default() }));
    assert_invalid(client.send(with(vec![unknown_variant])).await, "attributions[0].grad_cam.variant");
    let status = assert_invalid(client.send(with(vec![ig(1100)])).await, "attributions");
    assert!(status.message().contains("1101 engine rows"), "{status:?}");
    let noisy = Some(Method::SmoothGrad(proto::SmoothGrad { noise_level: f32::NAN, ..Default::default() }));
    assert_invalid(client.send(with(vec![noisy])).await, "attributions[0].smooth_grad.noise_level");
    let baseline = proto::Baseline { kind: Some(proto::baseline::Kind::Tensor(proto::Tensor::default())) };
    let bad_baseline =
        Some(Method::IntegratedGradients(proto::IntegratedGradients { steps: 4, baseline: Some(baseline) }));
    assert_invalid(
        client.send(with(vec![bad_baseline])).await,
        "attributions[0].integrated_gradients.baseline.tensor.shape",
    );
    let shap = |stdev, baselines: usize| {
        let baselines = vec![proto::Baseline::default(); baselines];
        Some(Method::GradientShap(proto::GradientShap { samples: 2, stdev, seed: 0, baselines }))
    };
    assert_invalid(client.send(with(vec![shap(f32::NAN, 1)])).await, "attributions[0].gradient_shap.stdev");
    assert_invalid(client.send(with(vec![shap(-0.5, 1)])).await, "attributions[0].gradient_shap.stdev");
    assert_invalid(client.send(with(vec![shap(0.1, 17)])).await, "attributions[0].gradient_shap.baselines");
    let rise = |masks, cells, keep| Some(Method::Rise(proto::Rise { masks, cells, keep, seed: 0 }));
    let status = assert_invalid(client.send(with(vec![rise(4, 65, 0.5)])).await, "attributions[0].rise.cells");
    assert!(status.message().contains("64 pixels"), "{status:?}");
    assert_invalid(client.send(with(vec![rise(4, 8, 1.5)])).await, "attributions[0].rise.keep");
    assert_invalid(client.send(with(vec![rise(4, 8, f32::NAN)])).await, "attributions[0].rise.keep");
    let status = assert_invalid(client.send(with(vec![rise(u32::MAX, 8, 0.5)])).await, "attributions");
    assert!(status.message().contains("4294967296 engine rows"), "{status:?}");

    let ok = client.send(with(vec![cam(""), ig(4), shap(0.1, 2), rise(4, 64, 1.0)])).await.expect("valid");
    assert_eq!(ok.tensors["attribution/gradient_shap"].array.shape(), [1, 3, 64, 64]);
    assert_eq!(ok.tensors["attribution/rise"].array.shape(), [1, 1, 64, 64]);
    assert!(
        ok.tensors.contains_key("attribution/grad_cam/layer4.1"),
        "the default Grad-CAM layer is the last spatial one"
    );
}
