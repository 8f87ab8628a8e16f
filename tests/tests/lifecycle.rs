//! Regression tests of the failures verification measured: an extreme aspect ratio that once
//! aborted the process, health that said SERVING before the API could serve (and again during a
//! drain), and an abandoned ExplainStream that kept the engine busy.

use std::time::{Duration, Instant};

use explain_client::{Error, proto};
use explain_service::server::{self, ServeOptions};
use explain_tests::{TestServer, encoded_image, health, options, sample_png, tiny_model};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// An 8-bit greyscale PNG of `width` × `height` pixels, all black (it compresses to almost
/// nothing).
fn black_png(width: u32, height: u32) -> Vec<u8> {
    use image::{
        ImageEncoder,
        codecs::png::{CompressionType, FilterType, PngEncoder},
    };
    let pixels = vec![0_u8; width as usize * height as usize];
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::NoFilter)
        .write_image(&pixels, width, height, image::ExtendedColorType::L8)
        .expect("encode png");
    bytes
}

fn classify(image: Vec<u8>) -> proto::ClassifyRequest {
    proto::ClassifyRequest { image: Some(encoded_image(image)), top_k: 1 }
}

#[tokio::test]
async fn extreme_aspect_ratios_are_refused_and_the_server_lives() {
    let server = TestServer::with_model(tiny_model()).await;
    // Within --max-image-pixels (40,000,000), but the resize to a shorter side of 73 would have
    // allocated 46.7 GB.
    for (width, height) in [(40_000_000, 1), (1, 40_000_000)] {
        let png = black_png(width, height);
        assert!(png.len() < 200_000, "a small file: {} bytes", png.len());
        let Err(Error::Status(status)) = server.client.classify(classify(png)).await else {
            panic!("{width}×{height} must be refused")
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("image.encoded:"), "{status:?}");
        assert!(status.message().contains("crop it closer to a square"), "{status:?}");
    }
    server.client.classify(classify(sample_png(64))).await.expect("still serving");
}

#[tokio::test]
async fn serving_means_the_api_answers() {
    let server = server::start(options(tiny_model())).await.expect("server starts");
    let address = server.local_addr().to_string();
    let client = explain_client::Client::connect(format!("http://{address}")).await.expect("connects");
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "never SERVING");
        if health(&address).await.ok() == Some(ServingStatus::Serving as i32) {
            // The first moment health says SERVING, the API must answer.
            client.model_info().await.expect("SERVING, so the API answers");
            break;
        }
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_shutdown_during_loading_never_turns_serving() {
    let settings = ServeOptions { drain_delay: Duration::from_secs(3), ..options(tiny_model()) };
    let mut server = server::start(settings).await.expect("server starts");
    let address = server.local_addr().to_string();
    let trigger = server.take_shutdown_trigger().expect("trigger");
    trigger.send(()).expect("shutdown begins while the model loads");
    server.ready().await.expect("the model still finishes loading");
    // During the drain delay calls are still taken, and health must stay NOT_SERVING.
    for _ in 0..5 {
        assert_eq!(health(&address).await.ok(), Some(ServingStatus::NotServing as i32));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.wait().await.expect("clean shutdown");
}

fn integrated_gradients(steps: u32) -> proto::ExplainRequest {
    use proto::attribution_spec::Method;
    proto::ExplainRequest {
        image: Some(encoded_image(sample_png(64))),
        attributions: vec![proto::AttributionSpec {
            method: Some(Method::IntegratedGradients(proto::IntegratedGradients { steps, baseline: None })),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn an_abandoned_explain_stream_stops_before_its_next_engine_run() {
    let mut settings = options(tiny_model());
    settings.load.max_batch_size = Some(8);
    settings.stream_in_flight = 8;
    let mut server = TestServer::start(settings).await;
    let steps = 500;
    // How long one request takes alone.
    let alone = Instant::now();
    server.client.send(integrated_gradients(steps)).await.expect("one request");
    let alone = alone.elapsed();

    // Eight such requests on one stream, abandoned after a fraction of the first one's time.
    let requests: Vec<proto::ExplainStreamRequest> = (0..8)
        .map(|i| proto::ExplainStreamRequest {
            request_id: format!("ig-{i}"),
            request: Some(integrated_gradients(steps)),
        })
        .collect();
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    for request in requests {
        sender.send(request).await.expect("queued");
    }
    let mut responses = server
        .client
        .raw()
        .explain_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("stream")
        .into_inner();
    let _ = tokio::time::timeout(alone / 2, responses.next()).await;
    drop(responses);
    drop(sender);

    // The engine is free again: a request sent now runs as fast as alone, instead of sharing the
    // engine with the eight abandoned ones (~8.5 times as long before the fix).
    let again = Instant::now();
    server.client.send(integrated_gradients(steps)).await.expect("a request after the abandoned stream");
    let again = again.elapsed();
    assert!(again < alone * 3, "took {again:?} beside abandoned work (alone: {alone:?})");
}
