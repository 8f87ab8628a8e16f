//! Serving under load: concurrent callers merged into one engine run with unchanged results, a
//! full queue answered with RESOURCE_EXHAUSTED and a retry delay, deadlines ending calls before
//! work starts, and many images on one ExplainStream with per-request errors in band.

use std::time::Duration;

use explain_client::{Error, proto};
use explain_tests::{
    TestServer, array, bare_grpc_call, encoded_image, graphs::Random, options, relative_l2, sample_png, tensor_image,
    tiny_model,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn saliency_request(seed: u64) -> proto::ExplainRequest {
    let image = array(&[1, 3, 64, 64], Random::new(seed).values(3 * 64 * 64, 2.0));
    proto::ExplainRequest {
        image: Some(tensor_image(&image)),
        attributions: vec![proto::AttributionSpec {
            method: Some(proto::attribution_spec::Method::Saliency(proto::Saliency { absolute: false })),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn concurrent_callers_share_engine_runs_without_changing_results() {
    let mut batched = options(tiny_model());
    batched.load.max_queue_delay = Duration::from_millis(300);
    let batched = TestServer::start(batched).await;
    let alone = TestServer::with_model(tiny_model()).await;
    let calls: Vec<_> = (0..6)
        .map(|seed| {
            let client = batched.client.clone();
            tokio::spawn(async move { client.send(saliency_request(seed)).await })
        })
        .collect();
    let mut largest = 0;
    for (seed, call) in calls.into_iter().enumerate() {
        let together = call.await.expect("task").expect("explain");
        largest = largest.max(together.summary.batch_size);
        let single = alone.client.send(saliency_request(seed as u64)).await.expect("explain");
        assert_eq!(single.summary.batch_size, 1);
        let error =
            relative_l2(&together.tensors["attribution/saliency"].array, &single.tensors["attribution/saliency"].array);
        assert!(error < 1e-5, "call {seed}: {error:e}");
    }
    assert!(largest > 1, "no engine run merged two callers");
}

#[tokio::test]
async fn a_full_queue_answers_resource_exhausted_with_a_retry_delay() {
    let mut settings = options(tiny_model());
    settings.load.queue_capacity = 1;
    settings.load.max_queue_delay = Duration::from_millis(500);
    let server = TestServer::start(settings).await;
    // The first request's row waits 500 ms for company, filling the one-row queue.
    let first = tokio::spawn({
        let client = server.client.clone();
        async move { client.send(saliency_request(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Without retries, so the refusal itself is seen (the SDK would wait and retry).
    let impatient = explain_client::Client::builder(format!("http://{}", server.address()))
        .retry(explain_client::RetryPolicy::none())
        .build()
        .await
        .expect("connect");
    let Err(Error::Status(status)) = impatient.send(saliency_request(2)).await else { panic!("the queue is full") };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.get_error_details().retry_info().and_then(|r| r.retry_delay), Some(Duration::from_millis(100)));
    assert_eq!(status.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()), Some("100"));
    first.await.expect("task").expect("the first request is served");
}

#[tokio::test]
async fn an_admitted_request_never_fails_half_way_for_lack_of_room() {
    use proto::attribution_spec::Method;
    let mut settings = options(tiny_model());
    settings.load.queue_capacity = 16;
    settings.load.max_batch_size = Some(4);
    let server = TestServer::start(settings).await;
    let no_retries = || {
        explain_client::Client::builder(format!("http://{}", server.address()))
            .retry(explain_client::RetryPolicy::none())
            .build()
    };
    // 201 rows in batches of 4: admitted alone (more than the capacity), held until it finishes.
    let integrated_gradients = proto::ExplainRequest {
        attributions: vec![proto::AttributionSpec {
            method: Some(Method::IntegratedGradients(proto::IntegratedGradients { steps: 200, baseline: None })),
        }],
        ..saliency_request(5)
    };
    let client = no_retries().await.expect("connect");
    let long = tokio::spawn(async move { client.send(integrated_gradients).await });
    // Callers arriving meanwhile are refused at admission, not the admitted request later on.
    let flood = no_retries().await.expect("connect");
    let mut refused = 0;
    for _ in 0..200 {
        if long.is_finished() {
            break;
        }
        match flood
            .classify(proto::ClassifyRequest {
                image: Some(tensor_image(&array(&[1, 3, 64, 64], vec![0.0; 3 * 64 * 64]))),
                top_k: 1,
            })
            .await
        {
            Err(Error::Status(status)) if status.code() == Code::ResourceExhausted => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => {}
        }
    }
    let explanation = long.await.expect("task").expect("the admitted request completes");
    assert_eq!(explanation.summary.rows, 201);
    assert!(refused > 0, "no caller arrived while the long request held the engine");
}

#[tokio::test]
async fn deadlines_end_calls_before_work_starts() {
    let mut settings = options(tiny_model());
    settings.load.max_queue_delay = Duration::from_millis(600);
    let server = TestServer::start(settings).await;
    // A bare HTTP/2 client sends the header, so that only the server enforces it (tonic's own
    // client would cancel the call itself): the service answers DEADLINE_EXCEEDED when the
    // deadline passes — on arrival, or while the row waits — and the row leaves the queue unrun.
    let message = prost::Message::encode_to_vec(&saliency_request(3));
    for (timeout, why) in [("1n", "already passed on arrival"), ("200m", "passes while the row waits")] {
        let started = std::time::Instant::now();
        let (code, message) = bare_grpc_call(
            &server.address(),
            "/explain.v1.ExplainService/Explain",
            &message,
            &[("grpc-timeout", timeout)],
        )
        .await;
        assert_eq!(code, Code::DeadlineExceeded as i32, "{why}: {message}");
        assert!(started.elapsed() < Duration::from_millis(550), "{why}: the call waited for the queue delay");
    }
    server.client.send(saliency_request(3)).await.expect("calls without a deadline are served");
}

#[tokio::test]
async fn explain_stream_tags_every_response_and_keeps_going_after_a_bad_request() {
    let mut settings = options(tiny_model());
    settings.stream_in_flight = 2;
    let mut server = TestServer::start(settings).await;
    let mut requests: Vec<proto::ExplainStreamRequest> = (0..5)
        .map(|i| proto::ExplainStreamRequest { request_id: format!("good-{i}"), request: Some(saliency_request(i)) })
        .collect();
    requests.insert(
        2,
        proto::ExplainStreamRequest {
            request_id: "bad".into(),
            request: Some(proto::ExplainRequest {
                image: Some(encoded_image(b"not an image".to_vec())),
                ..Default::default()
            }),
        },
    );
    requests.push(proto::ExplainStreamRequest {
        request_id: "png".into(),
        request: Some(proto::ExplainRequest { image: Some(encoded_image(sample_png(64))), ..saliency_request(9) }),
    });
    let mut responses =
        server.client.raw().explain_stream(tokio_stream::iter(requests)).await.expect("stream").into_inner();
    let mut per_request: std::collections::BTreeMap<String, Vec<proto::explain_stream_response::Result>> =
        Default::default();
    while let Some(message) = responses.next().await {
        let message = message.expect("no stream-level error");
        per_request.entry(message.request_id).or_default().push(message.result.expect("a result"));
    }
    assert_eq!(per_request.len(), 7);
    for (id, results) in &per_request {
        use proto::explain_response::Item;
        use proto::explain_stream_response::Result as Outcome;
        if id == "bad" {
            let [Outcome::Error(error)] = results.as_slice() else { panic!("bad: {results:?}") };
            assert_eq!(error.code, Code::InvalidArgument as i32);
            assert!(error.message.starts_with("image.encoded:"), "{error:?}");
            assert!(error.details.iter().any(|d| d.type_url.ends_with("google.rpc.BadRequest")), "{error:?}");
            continue;
        }
        let items: Vec<&Item> = results
            .iter()
            .map(|outcome| match outcome {
                Outcome::Response(response) => response.item.as_ref().expect("an item"),
                Outcome::Error(error) => panic!("{id}: {error:?}"),
            })
            .collect();
        assert!(matches!(items.first(), Some(Item::Prediction(_))), "{id}: prediction first");
        assert!(matches!(items.last(), Some(Item::Summary(_))), "{id}: summary last");
        assert!(items.iter().any(|item| matches!(item, Item::TensorChunk(c) if c.name == "attribution/saliency")));
    }
    // The stream's results are the unary call's.
    let unary = server.client.send(saliency_request(4)).await.expect("explain");
    let mut chunks = Vec::new();
    for outcome in &per_request["good-4"] {
        if let proto::explain_stream_response::Result::Response(response) = outcome
            && let Some(proto::explain_response::Item::TensorChunk(chunk)) = &response.item
        {
            chunks.extend_from_slice(&chunk.data);
        }
    }
    let expected: Vec<u8> = unary.tensors["attribution/saliency"].array.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(chunks, expected);
}
