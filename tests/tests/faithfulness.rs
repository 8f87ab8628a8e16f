//! Faithfulness scored with the answer: one score per attribution map (the Integrated Gradients
//! delta is not a map), curves that start and end where they must, areas that are their curves'
//! areas, and a deletion curve equal to the one `explain eval`'s code gives when the client
//! perturbs the image itself and asks for each point.

use explain_client::proto;
use explain_fidelity::{self as fidelity, Perturbation};
use explain_tests::{Refs, TestServer, fixture, tensor_image, tiny_model};
use ndarray::{Array3, Axis};
use proto::attribution_spec::Method;

const STEPS: u32 = 8;

fn method(method: Method) -> proto::AttributionSpec {
    proto::AttributionSpec { method: Some(method) }
}

#[tokio::test]
async fn every_map_gets_curves_that_the_evaluation_code_reproduces() {
    let refs = Refs::load(&fixture("tiny_resnet18_w8.refs.npz"));
    let server = TestServer::with_model(tiny_model()).await;
    let input = refs.row("input", 0);
    let target = proto::Target { kind: Some(proto::target::Kind::ClassIndex(refs.target(0))) };
    let cam = |upsample| proto::GradCam { layer: "layer4.1".into(), upsample, variant: 0 };
    let request = proto::ExplainRequest {
        image: Some(tensor_image(&input)),
        target: Some(target.clone()),
        attributions: vec![
            method(Method::Saliency(proto::Saliency { absolute: false })),
            method(Method::GradCam(cam(false))),
            method(Method::GradCam(cam(true))),
            method(Method::IntegratedGradients(proto::IntegratedGradients { steps: 4, baseline: None })),
        ],
        faithfulness: Some(proto::FaithfulnessSpec { steps: STEPS, blur_sigma: 0.0 }),
        ..Default::default()
    };
    let explanation = server.client.send(request).await.expect("explain");
    let names: Vec<&str> = explanation.faithfulness.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "attribution/grad_cam/layer4.1",
            "attribution/grad_cam/layer4.1/upsampled",
            "attribution/integrated_gradients",
            "attribution/saliency"
        ]
    );
    let probability = explanation.prediction.target.as_ref().expect("target").probability;
    for (name, scores) in &explanation.faithfulness {
        let points = STEPS as usize + 1;
        assert_eq!((scores.deletion_curve.len(), scores.insertion_curve.len()), (points, points), "{name}");
        // Deletion starts from the image, insertion ends at it.
        assert!((scores.deletion_curve[0] - probability).abs() < 1e-5, "{name}: {scores:?} vs {probability}");
        assert!((scores.insertion_curve[STEPS as usize] - probability).abs() < 1e-5, "{name}: {scores:?}");
        let area = |curve: &[f32]| fidelity::area_under_curve(&curve.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        assert!((f64::from(scores.deletion_auc) - area(&scores.deletion_curve)).abs() < 1e-6, "{name}");
        assert!((f64::from(scores.insertion_auc) - area(&scores.insertion_curve)).abs() < 1e-6, "{name}");
        // 8 steps: a quarter is point 2.
        let drop = scores.deletion_curve[0] - scores.deletion_curve[2];
        assert!((scores.deletion_drop_at_quarter - drop).abs() < 1e-6, "{name}");
    }
    // An upsampled map and the raw one it comes from rank the pixels alike.
    assert_eq!(
        explanation.faithfulness["attribution/grad_cam/layer4.1"].deletion_curve,
        explanation.faithfulness["attribution/grad_cam/layer4.1/upsampled"].deletion_curve
    );

    // The saliency map's deletion curve, made on the client with the evaluation's code: the image
    // with its most relevant pixels set to black (pixel value 0, normalised), asked for one by one.
    let info = server.client.model_info().await.expect("info");
    let spec = info.input.expect("input");
    let image = input.index_axis(Axis(0), 0).into_dimensionality().expect("[3, H, W]").to_owned();
    let (_, height, width) = image.dim();
    let black = Array3::from_shape_fn((3, height, width), |(c, _, _)| -spec.mean[c] / spec.std[c]);
    let saliency = &explanation.tensors["attribution/saliency"].array;
    let relevance = fidelity::pixel_relevance(saliency.view(), height, width).expect("relevance");
    let order = fidelity::by_relevance(relevance.view());
    let pictures = fidelity::curve_images(Perturbation::Deletion, image.view(), black.view(), &order, STEPS as usize)
        .expect("curve");
    let expected = &explanation.faithfulness["attribution/saliency"].deletion_curve;
    for (point, picture) in pictures.into_iter().enumerate() {
        let picture = picture.insert_axis(Axis(0)).into_dyn();
        let request = proto::ExplainRequest {
            image: Some(tensor_image(&picture)),
            target: Some(target.clone()),
            ..Default::default()
        };
        let scored = server.client.send(request).await.expect("a curve point");
        let p = scored.prediction.target.expect("target").probability;
        assert!(
            (p - expected[point]).abs() < 1e-5,
            "point {point}: the client's {p} against the server's {}",
            expected[point]
        );
    }
}
