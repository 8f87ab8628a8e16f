//! Gradient behaviour beyond the reference fixtures: directional derivatives of a seeded random CNN
//! built from every other differentiable op, DeepLift's completeness on it, a model the augmenter
//! refuses, batch splitting, SmoothGrad's seeding and variants, Integrated Gradients baselines, and
//! the graph cache.

use explain_client::{Client, Explanation, proto};
use explain_service::model::ModelSource;
use explain_tests::{
    TestServer, array,
    graphs::{
        RANDOM_CNN_CLASSES, RANDOM_CNN_SIZE, Random, cnn_without_gradient_rule, gelu_cnn, layout_cnn, random_cnn,
        resize_cnn, smooth_cnn, stem_cnn,
    },
    options, relative_l2, tensor_image, tiny_model, write_model,
};
use ndarray::ArrayD;
use proto::attribution_spec::Method;
use tonic::Code;

fn method(method: Method) -> proto::AttributionSpec {
    proto::AttributionSpec { method: Some(method) }
}

fn saliency() -> proto::AttributionSpec {
    method(Method::Saliency(proto::Saliency { absolute: false }))
}

fn target(index: u32) -> Option<proto::Target> {
    Some(proto::Target { kind: Some(proto::target::Kind::ClassIndex(index)) })
}

async fn explain(client: &mut Client, image: &ArrayD<f32>, request: proto::ExplainRequest) -> Explanation {
    let request = proto::ExplainRequest { image: Some(tensor_image(image)), ..request };
    client.send(request).await.expect("explain")
}

/// The objective at `image`: the target logit, or the cross-entropy loss from all logits.
async fn objective(client: &mut Client, image: &ArrayD<f32>, class: u32, cross_entropy: bool) -> f64 {
    let request =
        proto::ExplainRequest { target: target(class), top_k: RANDOM_CNN_CLASSES as u32, ..Default::default() };
    let prediction = explain(client, image, request).await.prediction;
    let logit = f64::from(prediction.target.expect("target").logit);
    if !cross_entropy {
        return logit;
    }
    let logits: Vec<f64> = prediction.top_classes.iter().map(|c| f64::from(c.logit)).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() - logit
}

#[tokio::test]
async fn directional_derivatives_match_finite_differences() {
    directional_derivatives(&random_cnn(7), "random-cnn").await;
}

/// The same check through the smooth and hard activations and the softmaxes.
#[tokio::test]
async fn directional_derivatives_through_activations_and_softmaxes() {
    directional_derivatives(&smooth_cnn(3), "smooth-cnn").await;
}

/// The same check through transposes, LayerNormalization, Split, a channel shuffle and a Slice
/// whose bounds come from the tensor's shape.
#[tokio::test]
async fn directional_derivatives_through_layout_ops() {
    directional_derivatives(&layout_cnn(5), "layout-cnn").await;
}

/// The same check through Gelu, exact and approximated (opset 20).
#[tokio::test]
async fn directional_derivatives_through_gelu() {
    directional_derivatives(&gelu_cnn(4), "gelu-cnn").await;
}

/// The same check through strided convolutions of the image, whose gradients are phase-split.
#[tokio::test]
async fn directional_derivatives_through_strided_stems() {
    directional_derivatives(&stem_cnn(8), "stem-cnn").await;
}

/// The same check through Resize in its nearest and linear modes and four coordinate mappings.
#[tokio::test]
async fn directional_derivatives_through_resize() {
    directional_derivatives(&resize_cnn(6), "resize-cnn").await;
}

/// ⟨∇f, d⟩ against central differences of `model` (16 × 16 input, 5 classes) along random
/// directions, for the target logit and the cross-entropy loss.
async fn directional_derivatives(model: &explain_proto::onnx::ModelProto, name: &str) {
    let path = write_model(model, name);
    let TestServer { mut client, server: _server } = TestServer::with_model(ModelSource::File(path)).await;
    let size = RANDOM_CNN_SIZE as usize;
    let mut random = Random::new(11);
    let mut checked = 0;
    for trial in 0..8 {
        let x = array(&[1, 3, size, size], random.values(3 * size * size, 1.5));
        let d = array(&[1, 3, size, size], random.values(3 * size * size, 1.0));
        for (class, cross_entropy) in [(trial % 5, false), ((trial + 2) % 5, true)] {
            let objective_kind = if cross_entropy { proto::Objective::CrossEntropy } else { proto::Objective::Logit };
            let request = proto::ExplainRequest {
                target: target(class),
                objective: objective_kind as i32,
                attributions: vec![saliency()],
                ..Default::default()
            };
            let gradient = explain(&mut client, &x, request).await.tensors["attribution/saliency"].array.clone();
            let along: f64 = gradient.iter().zip(d.iter()).map(|(g, d)| f64::from(*g) * f64::from(*d)).sum();
            // Errors are scaled by ‖∇f‖‖d‖, the size ⟨∇f, d⟩ would have without cancellation.
            let norm = |a: &ArrayD<f32>| a.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            let scale = norm(&gradient) * norm(&d);
            let at = objective(&mut client, &x, class, cross_entropy).await;
            // The network is piecewise linear: compare where f is linear along d on [x − εd, x + εd]
            // (forward and backward slopes agree), shrinking ε when a ReLU or MaxPool decision
            // switches inside the interval.
            for epsilon in [3e-3_f32, 1e-3, 3e-4] {
                let plus = objective(&mut client, &(&x + &(&d * epsilon)), class, cross_entropy).await;
                let minus = objective(&mut client, &(&x - &(&d * epsilon)), class, cross_entropy).await;
                let (forward, backward) = ((plus - at) / f64::from(epsilon), (at - minus) / f64::from(epsilon));
                if (forward - backward).abs() / scale > 1e-3 {
                    continue;
                }
                let finite = (plus - minus) / (2.0 * f64::from(epsilon));
                let error = (finite - along).abs() / scale;
                println!(
                    "trial {trial}, class {class}, CE {cross_entropy}, ε {epsilon}: {finite} vs {along}: {error:e}"
                );
                assert!(
                    error < 1e-3,
                    "trial {trial}, class {class}, CE {cross_entropy}: finite {finite} vs ⟨∇f, d⟩ {along}"
                );
                checked += 1;
                break;
            }
        }
    }
    assert!(checked >= 12, "only {checked} of 16 directions were linear enough to check");
}

/// `explaind augment MODEL --check`, as an operator would run it before serving a model: the model
/// without a gradient rule exits 1 naming the op and node that block gradients and DeepLift, and
/// lists the forward-only methods; the tiny ResNet exits 0 with every method.
#[test]
fn explaind_augment_check_reports_what_a_model_supports() {
    let check = |path: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_explaind-under-test"))
            .args(["--log-filter", "warn", "augment"])
            .arg(path)
            .arg("--check")
            .arg("--ort-library")
            .arg(explain_tests::ort_library())
            .output()
            .expect("explaind runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, report) = check(&write_model(&cnn_without_gradient_rule(), "round-cnn-check"));
    println!("{report}");
    assert_eq!(code, Some(1), "{report}");
    for line in ["gradients: no: unsupported op `Round` (node Round_rounded)", "DeepLift: no: unsupported op `Round`"] {
        assert!(report.contains(line), "`{line}` not in {report}");
    }
    assert!(report.contains("methods: occlusion, score_cam, feature_ablation, rise, ablation_cam\n"), "{report}");
    let (code, report) = check(&explain_tests::fixture("tiny_resnet18_w8.legacy.onnx"));
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("layers (11, named as torchvision's ResNet): conv1, maxpool, layer1.0"), "{report}");
    assert!(report.contains("gradients: yes\nDeepLift: yes\n") && report.contains("deep_lift\n"), "{report}");
}

#[tokio::test]
async fn a_model_without_gradient_rules_is_served_without_gradients() {
    let path = write_model(&cnn_without_gradient_rule(), "round-cnn");
    let TestServer { mut client, server: _server } = TestServer::with_model(ModelSource::File(path)).await;
    let info = client.model_info().await.expect("info");
    assert!(!info.gradients_available);
    let reason = info.gradients_unavailable_reason;
    assert!(reason.contains("unsupported op `Round`") && reason.contains("Round_rounded"), "{reason}");

    let image = array(&[1, 3, 8, 8], vec![0.5; 3 * 64]);
    let request = proto::ExplainRequest {
        image: Some(tensor_image(&image)),
        attributions: vec![saliency()],
        ..Default::default()
    };
    let Err(explain_client::Error::Status(status)) = client.send(request).await else { panic!("needs gradients") };
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("Round"), "{status:?}");

    // Predictions, activations and the methods of forward passes only are still served, and listed.
    assert_eq!(info.methods, ["occlusion", "score_cam", "feature_ablation", "rise", "ablation_cam"]);
    let feature_maps = vec![proto::FeatureMapSpec { layer: "features".into(), ..Default::default() }];
    let occlusion = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::Occlusion(proto::Occlusion {
            window: 4,
            stride: 4,
            baseline: None,
        })),
    };
    let score_cam = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::ScoreCam(proto::ScoreCam {
            layer: "features".into(),
            upsample: false,
        })),
    };
    let rise = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::Rise(proto::Rise { masks: 4, cells: 2, keep: 0.5, seed: 1 })),
    };
    let ablation_cam = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::AblationCam(proto::AblationCam {
            layer: "features".into(),
            upsample: true,
        })),
    };
    let attributions = vec![occlusion, score_cam, rise, ablation_cam];
    let request = proto::ExplainRequest { feature_maps, attributions, ..Default::default() };
    let explanation = explain(&mut client, &image, request).await;
    assert_eq!(explanation.tensors["activation/features"].array.shape(), &[1, 4, 8, 8]);
    assert_eq!(explanation.tensors["attribution/occlusion"].array.shape(), &[1, 3, 8, 8]);
    assert_eq!(explanation.tensors["attribution/score_cam/features"].array.shape(), &[1, 1, 8, 8]);
    assert_eq!(explanation.tensors["attribution/rise"].array.shape(), &[1, 1, 8, 8]);
    assert_eq!(explanation.tensors["attribution/ablation_cam/features/upsampled"].array.shape(), &[1, 1, 8, 8]);
}

#[tokio::test]
async fn operators_who_require_gradients_get_a_load_failure_instead() {
    let path = write_model(&cnn_without_gradient_rule(), "round-cnn-strict");
    let mut settings = options(ModelSource::File(path));
    settings.load.require_gradients = true;
    let mut server = explain_service::server::start(settings).await.expect("binds");
    let reason = server.ready().await.expect_err("the model must not load");
    assert!(reason.contains("--require-gradients") && reason.contains("Sigmoid"), "{reason}");
    assert!(server.wait().await.is_err(), "the server stops with the load error");
}

#[tokio::test]
async fn operators_who_require_cuda_get_a_load_failure_on_a_cpu_runtime() {
    let mut settings = options(tiny_model());
    settings.load.ort.require_cuda = true;
    let mut server = explain_service::server::start(settings).await.expect("binds");
    let reason = server.ready().await.expect_err("this ONNX Runtime has no CUDA");
    assert!(reason.contains("--require-cuda"), "{reason}");
}

fn integrated_gradients(steps: u32, baseline: Option<proto::baseline::Kind>) -> proto::AttributionSpec {
    let baseline = baseline.map(|kind| proto::Baseline { kind: Some(kind) });
    method(Method::IntegratedGradients(proto::IntegratedGradients { steps, baseline }))
}

fn smooth_grad(samples: u32, noise_level: f32, seed: u64, variant: proto::SmoothGradVariant) -> proto::AttributionSpec {
    method(Method::SmoothGrad(proto::SmoothGrad { samples, noise_level, seed, variant: variant as i32 }))
}

#[tokio::test]
async fn rows_split_into_small_batches_give_the_same_attributions() {
    let mut small = options(tiny_model());
    small.load.max_batch_size = Some(3);
    let mut small = TestServer::start(small).await;
    let mut large = options(tiny_model());
    large.load.max_batch_size = Some(32);
    let mut large = TestServer::start(large).await;
    let image = array(&[1, 3, 64, 64], Random::new(5).values(3 * 64 * 64, 2.0));
    let request = proto::ExplainRequest {
        attributions: vec![
            integrated_gradients(10, None),
            method(Method::GuidedBackprop(proto::GuidedBackprop {})),
            smooth_grad(7, 0.1, 42, proto::SmoothGradVariant::Mean),
        ],
        ..Default::default()
    };
    let a = explain(&mut small.client, &image, request.clone()).await;
    let b = explain(&mut large.client, &image, request).await;
    assert_eq!(a.summary.rows, 1 + 10 + 7, "the image's guided row, then the IG and SmoothGrad rows");
    assert_eq!((a.summary.batch_size, b.summary.batch_size), (3, 17));
    for (name, tensor) in &a.tensors {
        let error = relative_l2(&tensor.array, &b.tensors[name].array);
        assert!(error < 1e-5, "{name}: {error:e}");
    }
}

#[tokio::test]
async fn smooth_grad_is_seeded_and_its_variants_are_consistent() {
    use proto::SmoothGradVariant::{Mean, Squared, Variance};
    let TestServer { mut client, server: _server } = TestServer::with_model(tiny_model()).await;
    let image = array(&[1, 3, 64, 64], Random::new(9).values(3 * 64 * 64, 2.0));
    let run = |attributions: Vec<proto::AttributionSpec>| proto::ExplainRequest { attributions, ..Default::default() };
    let all = explain(
        &mut client,
        &image,
        run(vec![smooth_grad(16, 0.2, 1, Mean), smooth_grad(16, 0.2, 1, Squared), smooth_grad(16, 0.2, 1, Variance)]),
    )
    .await;
    let (mean, squared, variance) = (
        &all.tensors["attribution/smooth_grad"].array,
        &all.tensors["attribution/smooth_grad_squared"].array,
        &all.tensors["attribution/smooth_grad_variance"].array,
    );
    // VarGrad = E[g²] − E[g]² for the same noise.
    let expected = squared - &mean.mapv(|m| m * m);
    assert!(relative_l2(variance, &expected) < 1e-3);
    assert!(variance.iter().all(|&v| v >= 0.0));

    let again = explain(&mut client, &image, run(vec![smooth_grad(16, 0.2, 1, Mean)])).await;
    assert_eq!(&again.tensors["attribution/smooth_grad"].array, mean, "same seed, same result");
    let other = explain(&mut client, &image, run(vec![smooth_grad(16, 0.2, 2, Mean)])).await;
    assert!(relative_l2(&other.tensors["attribution/smooth_grad"].array, mean) > 1e-3, "another seed, other noise");

    // Without noise, SmoothGrad is the gradient.
    let quiet = explain(&mut client, &image, run(vec![smooth_grad(4, 1e-7, 3, Mean), saliency()])).await;
    let error =
        relative_l2(&quiet.tensors["attribution/smooth_grad"].array, &quiet.tensors["attribution/saliency"].array);
    assert!(error < 1e-3, "{error:e}");
}

/// DeepLift on the random CNN, whose LeakyReLU, Clip and overlapping MaxPool each have their own
/// DeepLift rule: for random inputs and baselines, the map sums to f(x) − f(baseline), measured
/// with two predictions, and the reported delta is how far it is.
#[tokio::test]
async fn deep_lift_sums_to_the_logit_change_on_every_rule() {
    let path = write_model(&random_cnn(7), "random-cnn-deep-lift");
    let TestServer { mut client, server: _server } = TestServer::with_model(ModelSource::File(path)).await;
    let size = RANDOM_CNN_SIZE as usize;
    let mut random = Random::new(5);
    for trial in 0..6 {
        let image = array(&[1, 3, size, size], random.values(3 * size * size, 2.0));
        let reference = array(&[1, 3, size, size], random.values(3 * size * size, 2.0));
        let baseline_tensor = match tensor_image(&reference).source {
            Some(proto::image::Source::Tensor(tensor)) => tensor,
            other => panic!("{other:?}"),
        };
        let class = trial % RANDOM_CNN_CLASSES as u32;
        let baseline = proto::Baseline { kind: Some(proto::baseline::Kind::Tensor(baseline_tensor)) };
        let request = proto::ExplainRequest {
            target: target(class),
            attributions: vec![method(Method::DeepLift(proto::DeepLift { baseline: Some(baseline) }))],
            ..Default::default()
        };
        let explanation = explain(&mut client, &image, request).await;
        let attribution = &explanation.tensors["attribution/deep_lift"].array;
        let total: f64 = attribution.iter().map(|&a| f64::from(a)).sum();
        let size_of: f64 = attribution.iter().map(|&a| f64::from(a).abs()).sum();
        let change =
            objective(&mut client, &image, class, false).await - objective(&mut client, &reference, class, false).await;
        let delta = f64::from(explanation.tensors["attribution/deep_lift/delta"].array[[0]]);
        let missed = total - change;
        println!(
            "trial {trial}: Σ attribution {total:.6}, f(x) − f(x′) {change:.6}: {missed:.2e} apart, delta {delta:.2e}"
        );
        assert!((total - change - delta).abs() < 1e-4 * size_of.max(1.0), "delta {delta} is not Σ − change");
        assert!(missed.abs() < 1e-4 * size_of.max(1.0), "Σ {total} ≠ f(x) − f(x′) = {change}");
    }
}

#[tokio::test]
async fn integrated_gradients_baselines_and_completeness() {
    use proto::baseline::Kind;
    let path = write_model(&random_cnn(7), "random-cnn-ig");
    let TestServer { mut client, server: _server } = TestServer::with_model(ModelSource::File(path)).await;
    let size = RANDOM_CNN_SIZE as usize;
    let image = array(&[1, 3, size, size], Random::new(3).values(3 * size * size, 2.0));
    let class = 1;
    // A black image, normalised with ImageNet's statistics (the server's default), as a tensor.
    let (mean, std) = ([0.485_f32, 0.456, 0.406], [0.229_f32, 0.224, 0.225]);
    let black = ArrayD::from_shape_fn(ndarray::IxDyn(&[1, 3, size, size]), |i| -mean[i[1]] / std[i[1]]);
    let black_tensor = match tensor_image(&black).source {
        Some(proto::image::Source::Tensor(tensor)) => tensor,
        other => panic!("{other:?}"),
    };
    let ig = |steps, baseline| proto::ExplainRequest {
        target: target(class),
        attributions: vec![integrated_gradients(steps, Some(baseline))],
        ..Default::default()
    };
    let by_kind = explain(&mut client, &image, ig(256, Kind::Black(proto::BaselineBlack {}))).await;
    let by_tensor = explain(&mut client, &image, ig(256, Kind::Tensor(black_tensor))).await;
    let attribution = &by_kind.tensors["attribution/integrated_gradients"].array;
    assert!(relative_l2(attribution, &by_tensor.tensors["attribution/integrated_gradients"].array) < 1e-6);

    // The delta is Σ attribution − (f(x) − f(baseline)); with 256 steps the path integral is
    // close to the rise (completeness).
    let delta = f64::from(by_kind.tensors["attribution/integrated_gradients/delta"].array[[0]]);
    let total: f64 = attribution.iter().map(|&a| f64::from(a)).sum();
    let rise = objective(&mut client, &image, class, false).await - objective(&mut client, &black, class, false).await;
    assert!((total - rise - delta).abs() < 1e-4, "Σ {total} − rise {rise} ≠ delta {delta}");
    assert!(delta.abs() < 0.02 * rise.abs(), "completeness: delta {delta} for a rise of {rise}");

    for kind in [
        Kind::Blurred(proto::BaselineBlurred { sigma: 2.0 }),
        Kind::UniformNoise(proto::BaselineUniformNoise { seed: 5 }),
    ] {
        let explanation = explain(&mut client, &image, ig(16, kind)).await;
        let attribution = &explanation.tensors["attribution/integrated_gradients"].array;
        assert!(attribution.iter().all(|v| v.is_finite()) && attribution.iter().any(|&v| v != 0.0));
    }
}

#[tokio::test]
async fn gradient_graphs_are_cached_by_content() {
    let dir = std::env::temp_dir().join(format!("explain-graph-cache-{}", std::process::id()));
    let mut settings = options(tiny_model());
    settings.load.cache_dir = Some(dir.clone());
    let image = array(&[1, 3, 64, 64], Random::new(1).values(3 * 64 * 64, 1.0));
    let request = || proto::ExplainRequest { attributions: vec![saliency()], ..Default::default() };

    let mut first = TestServer::start(settings.clone()).await;
    let fresh = explain(&mut first.client, &image, request()).await;
    let cached: Vec<_> = std::fs::read_dir(&dir).expect("cache folder").collect();
    assert_eq!(cached.len(), 2, "the full and the head gradient graphs are cached");

    let mut second = TestServer::start(settings).await;
    let from_cache = explain(&mut second.client, &image, request()).await;
    assert_eq!(fresh.tensors["attribution/saliency"], from_cache.tensors["attribution/saliency"]);
    std::fs::remove_dir_all(dir).expect("clean up");
}
