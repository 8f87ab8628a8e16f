//! The Rust SDK against servers that misbehave on purpose and against real ones: retries (attempts
//! counted, the server's pushback honoured, INVALID_ARGUMENT and the call's own deadline never
//! retried), balancing over an
//! endpoint list and over the addresses a DNS name resolves to, TLS with a custom CA and a client
//! certificate, the request builder, and many images over one ExplainStream with bounded in-flight
//! work.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use explain_client::{Client, Error, Resolver, RetryPolicy, proto};
use explain_proto::v1::explain_service_server::{ExplainService, ExplainServiceServer};
use explain_tests::{Pki, TestServer, encoded_image, sample_png, tiny_model};
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status, Streaming, metadata::MetadataValue};

/// A server whose GetModelInfo fails `failures` times with `code` (and `pushback_ms` when set),
/// then answers with its `name`, each answer after `delay`; every call is counted. Its
/// ExplainStream answers every request, the one with id `malformed` wrongly.
struct Scripted {
    name: String,
    delay: Duration,
    failures: usize,
    code: Code,
    pushback_ms: Option<u64>,
    calls: Arc<AtomicUsize>,
    malformed: &'static str,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl ExplainService for Scripted {
    async fn get_model_info(
        &self,
        _request: Request<proto::GetModelInfoRequest>,
    ) -> Result<Response<proto::GetModelInfoResponse>, Status> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if call < self.failures {
            let mut status = Status::new(self.code, format!("failure {}", call + 1));
            if let Some(ms) = self.pushback_ms {
                status.metadata_mut().insert("grpc-retry-pushback-ms", MetadataValue::from(ms));
            }
            return Err(status);
        }
        Ok(Response::new(proto::GetModelInfoResponse { name: self.name.clone(), ..Default::default() }))
    }

    async fn classify(
        &self,
        _request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        Err(Status::unimplemented("scripted server"))
    }

    type ExplainStream = Stream<proto::ExplainResponse>;

    async fn explain(&self, _request: Request<proto::ExplainRequest>) -> Result<Response<Self::ExplainStream>, Status> {
        Err(Status::unimplemented("scripted server"))
    }

    type ExplainStreamStream = Stream<proto::ExplainStreamResponse>;

    /// Answers each request with a prediction, one two-value tensor `map` and a summary; request
    /// `malformed` gets a second chunk of `map` after it was complete, then its summary.
    async fn explain_stream(
        &self,
        request: Request<Streaming<proto::ExplainStreamRequest>>,
    ) -> Result<Response<Self::ExplainStreamStream>, Status> {
        use proto::explain_response::Item;
        let malformed = self.malformed;
        let mut requests = request.into_inner();
        let (answers, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(Ok(request)) = requests.next().await {
                let chunk = proto::TensorChunk {
                    name: "map".into(),
                    shape: vec![1, 2],
                    dtype: proto::DataType::Float32.into(),
                    total_bytes: 8,
                    data: [1.5_f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..Default::default()
                };
                let mut items = vec![Item::Prediction(proto::Prediction::default()), Item::TensorChunk(chunk.clone())];
                if request.request_id == malformed {
                    items.push(Item::TensorChunk(chunk));
                }
                items.push(Item::Summary(proto::Summary::default()));
                for item in items {
                    let response = proto::ExplainResponse { item: Some(item) };
                    let answer = proto::ExplainStreamResponse {
                        request_id: request.request_id.clone(),
                        result: Some(proto::explain_stream_response::Result::Response(response)),
                    };
                    if answers.send(Ok(answer)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}

/// Serves `service` on a free loopback port until the test ends.
async fn serve(service: Scripted) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ExplainServiceServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    address
}

fn scripted(name: &str, failures: usize, code: Code, pushback_ms: Option<u64>) -> (Scripted, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (
        Scripted {
            name: name.into(),
            delay: Duration::ZERO,
            failures,
            code,
            pushback_ms,
            calls: calls.clone(),
            malformed: "",
        },
        calls,
    )
}

#[tokio::test]
async fn unavailable_is_retried_with_backoff_until_it_succeeds() {
    let (service, calls) = scripted("flaky", 2, Code::Unavailable, None);
    let address = serve(service).await;
    let client = Client::builder(format!("http://{address}")).build().await.expect("connect");
    let info = client.model_info().await.expect("the third attempt succeeds");
    assert_eq!(info.name, "flaky");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn resource_exhausted_waits_for_the_servers_pushback() {
    let (service, calls) = scripted("busy", 2, Code::ResourceExhausted, Some(150));
    let address = serve(service).await;
    let client = Client::builder(format!("http://{address}")).build().await.expect("connect");
    let started = Instant::now();
    client.model_info().await.expect("served after two pushbacks");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_millis(300), "waited {:?}, less than 2 × 150 ms", started.elapsed());
}

#[tokio::test]
async fn invalid_argument_is_never_retried_and_attempts_are_bounded() {
    let (service, calls) = scripted("strict", 10, Code::InvalidArgument, None);
    let address = serve(service).await;
    let client = Client::builder(format!("http://{address}")).build().await.expect("connect");
    let Err(Error::Status(status)) = client.model_info().await else { panic!("INVALID_ARGUMENT is final") };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (service, calls) = scripted("down", 10, Code::Unavailable, None);
    let address = serve(service).await;
    let policy = RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(5), ..RetryPolicy::default() };
    let client = Client::builder(format!("http://{address}")).retry(policy).build().await.expect("connect");
    assert!(client.model_info().await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "3 attempts, then the error");
}

#[tokio::test]
async fn a_call_that_runs_out_of_its_deadline_is_not_tried_again() {
    // tonic reports the client's own deadline as CANCELLED with its transport error as the
    // source, as it reports a connection that closed under a queued call (which is retried).
    let (mut service, calls) = scripted("slow", 0, Code::Ok, None);
    service.delay = Duration::from_secs(5);
    let address = serve(service).await;
    let client = Client::builder(format!("http://{address}"))
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("connect");
    let Err(Error::Status(status)) = client.model_info().await else { panic!("the deadline passes first") };
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a call past its deadline was sent again");
}

#[tokio::test]
async fn an_endpoint_list_spreads_calls_over_every_server() {
    let (first, first_calls) = scripted("a", 0, Code::Ok, None);
    let (second, second_calls) = scripted("b", 0, Code::Ok, None);
    let (a, b) = (serve(first).await, serve(second).await);
    let client = Client::builder(format!("http://{a}")).endpoint(format!("http://{b}")).build().await.expect("build");
    for _ in 0..40 {
        client.model_info().await.expect("call");
    }
    let (first, second) = (first_calls.load(Ordering::SeqCst), second_calls.load(Ordering::SeqCst));
    assert_eq!(first + second, 40);
    assert!(first >= 5 && second >= 5, "calls were not spread: {first} and {second}");
}

/// A resolver that answers with fixed addresses and counts lookups.
struct FakeResolver {
    addresses: Vec<SocketAddr>,
    lookups: Arc<AtomicUsize>,
}

impl Resolver for FakeResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = if host == "explain.example.svc" { Ok(self.addresses.clone()) } else { Ok(Vec::new()) };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn a_dns_name_is_balanced_over_the_addresses_it_resolves_to() {
    let (first, first_calls) = scripted("a", 0, Code::Ok, None);
    let (second, second_calls) = scripted("b", 0, Code::Ok, None);
    let addresses = vec![serve(first).await, serve(second).await];
    let lookups = Arc::new(AtomicUsize::new(0));
    let client = Client::builder("http://explain.example.svc:50051")
        .balance_dns(Duration::from_millis(100))
        .resolver(FakeResolver { addresses, lookups: lookups.clone() })
        .build()
        .await
        .expect("build");
    for _ in 0..40 {
        client.model_info().await.expect("call");
    }
    let (first, second) = (first_calls.load(Ordering::SeqCst), second_calls.load(Ordering::SeqCst));
    assert!(first >= 5 && second >= 5, "calls were not spread: {first} and {second}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(lookups.load(Ordering::SeqCst) >= 2, "the name is re-resolved");

    let unknown = Client::builder("http://nowhere.example.svc:50051")
        .balance_dns(Duration::from_secs(30))
        .resolver(FakeResolver { addresses: Vec::new(), lookups: Arc::new(AtomicUsize::new(0)) })
        .build()
        .await;
    assert!(matches!(unknown, Err(Error::Config(_))), "a name without addresses fails at build");
}

#[tokio::test]
async fn the_request_builder_matches_the_raw_request() {
    let server = TestServer::with_model(tiny_model()).await;
    let client = server.client.clone();
    let png = sample_png(80);
    let built = client
        .explain(png.clone())
        .target(3)
        .saliency()
        .grad_cam("layer4.1")
        .feature_maps("layer2.1")
        .feature_maps_top_k("layer1.0", 4)
        .layer_gradient("layer3.1")
        .send()
        .await
        .expect("explain");
    let names: Vec<&str> = built.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "activation/layer1.0",
            "activation/layer2.1",
            "attribution/grad_cam/layer4.1",
            "attribution/saliency",
            "gradient/layer3.1"
        ]
    );
    assert_eq!(built.prediction.target.as_ref().map(|t| t.index), Some(3));
    let raw = client
        .send(proto::ExplainRequest {
            image: Some(encoded_image(png)),
            target: Some(proto::Target { kind: Some(proto::target::Kind::ClassIndex(3)) }),
            attributions: vec![proto::AttributionSpec {
                method: Some(proto::attribution_spec::Method::Saliency(proto::Saliency { absolute: false })),
            }],
            ..Default::default()
        })
        .await
        .expect("explain");
    assert_eq!(built.tensors["attribution/saliency"], raw.tensors["attribution/saliency"]);
}

#[tokio::test]
async fn compressed_calls_give_the_same_results() {
    let server = TestServer::with_model(tiny_model()).await;
    let plain = server.client.explain(sample_png(64)).saliency().feature_maps("conv1").send().await.expect("plain");
    for compression in [explain_client::Compression::Gzip, explain_client::Compression::Zstd] {
        let client = Client::builder(format!("http://{}", server.address()))
            .compression(compression)
            .build()
            .await
            .expect("connect");
        let packed = client.explain(sample_png(64)).saliency().feature_maps("conv1").send().await.expect("compressed");
        assert_eq!(packed.tensors, plain.tensors, "{compression:?}");
    }
}

#[tokio::test]
async fn many_images_stream_with_bounded_in_flight_work() {
    let server = TestServer::with_model(tiny_model()).await;
    let client = server.client.clone();
    let mut requests: Vec<proto::ExplainRequest> =
        (0..9).map(|i| client.explain(sample_png(48 + 8 * i)).saliency().into_request()).collect();
    requests[4].image = Some(encoded_image(b"broken".to_vec()));
    let mut seen = Vec::new();
    let mut results = client.explain_many(requests, 3);
    while let Some((index, result)) = results.next().await {
        match (index, result) {
            (4, Err(Error::Status(status))) => assert_eq!(status.code(), Code::InvalidArgument),
            (4, other) => panic!("the broken image: {other:?}"),
            (_, Ok(explanation)) => {
                assert_eq!(explanation.tensors["attribution/saliency"].array.shape(), &[1, 3, 64, 64])
            }
            (_, Err(error)) => panic!("image {index}: {error}"),
        }
        seen.push(index);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..9).collect::<Vec<_>>());
}

/// A request of an `ExplainStream` whose answer does not assemble (a chunk after its tensor was
/// complete) fails alone, once; the requests around it are decoded.
#[tokio::test]
async fn a_stream_request_that_does_not_assemble_fails_alone() {
    let (mut service, _) = scripted("streams", 0, Code::Ok, None);
    service.malformed = "1";
    let address = serve(service).await;
    let client = Client::builder(format!("http://{address}")).build().await.expect("connect");
    let requests = vec![proto::ExplainRequest::default(); 3];
    let mut results: Vec<_> = client.explain_many(requests, 2).collect().await;
    results.sort_by_key(|(index, _)| *index);
    assert_eq!(results.len(), 3, "each request completes once: {results:?}");
    for (index, result) in results {
        match (index, result) {
            (1, Err(Error::Assembly(message))) => {
                assert!(message.contains("after the tensor was complete"), "{message}")
            }
            (1, other) => panic!("the malformed answer: {other:?}"),
            (_, Ok(explanation)) => assert_eq!(explanation.tensors["map"].array.as_slice(), Some(&[1.5, -2.0][..])),
            (_, Err(error)) => panic!("request {index}: {error}"),
        }
    }
}

/// Requests of an `ExplainStream` refused in band for lack of room are sent again when another of
/// the stream completes: with 12 requests of 5 rows on an engine that holds 4, only one is
/// admitted at a time, and every one still succeeds under the default policy (4 attempts, which
/// time-based retries alone would exhaust); without retries some are refused.
#[tokio::test]
async fn a_stream_retries_requests_refused_for_lack_of_room() {
    let mut settings = explain_tests::options(tiny_model());
    settings.load.queue_capacity = 4;
    let server = TestServer::start(settings).await;
    let occlusion =
        proto::attribution_spec::Method::Occlusion(proto::Occlusion { window: 32, stride: 32, baseline: None });
    let requests = |client: &Client| -> Vec<proto::ExplainRequest> {
        (0..12)
            .map(|i| {
                let mut request = client.explain(sample_png(64 + i)).into_request();
                request.attributions.push(proto::AttributionSpec { method: Some(occlusion.clone()) });
                request
            })
            .collect()
    };
    let connect = |retry: RetryPolicy| Client::builder(format!("http://{}", server.address())).retry(retry).build();
    let patient = connect(RetryPolicy::default()).await.expect("connect");
    let mut results = patient.explain_many(requests(&patient), 6);
    let mut served = 0;
    while let Some((index, result)) = results.next().await {
        let explanation = result.unwrap_or_else(|e| panic!("request {index}: {e}"));
        assert_eq!(explanation.tensors["attribution/occlusion"].array.shape(), &[1, 3, 64, 64]);
        served += 1;
    }
    assert_eq!(served, 12);

    let impatient = connect(RetryPolicy::none()).await.expect("connect");
    let mut results = impatient.explain_many(requests(&impatient), 6);
    let mut refused = 0;
    while let Some((_, result)) = results.next().await {
        if let Err(Error::Status(status)) = result {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            refused += 1;
        }
    }
    assert!(refused > 0, "six requests of five rows on a four-row engine: some must be refused");
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_a_client_certificate() {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let Pki { ca, server_cert, server_key, client_cert, client_key } = Pki::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (service, calls) = scripted("secure", 0, Code::Ok, None);
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server_cert, &server_key))
        .client_ca_root(Certificate::from_pem(&ca));
    tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tls)
            .expect("server TLS")
            .add_service(ExplainServiceServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let url = format!("https://localhost:{port}");

    let client = Client::builder(&url)
        .ca_certificate(ca.clone())
        .client_identity(client_cert, client_key)
        .build()
        .await
        .expect("mutual TLS connects");
    assert_eq!(client.model_info().await.expect("call over TLS").name, "secure");

    let anonymous = Client::builder(&url).ca_certificate(ca).retry(RetryPolicy::none()).build().await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(client) => client.model_info().await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    let other_ca = Pki::new().ca;
    let untrusting = Client::builder(&url).ca_certificate(other_ca).retry(RetryPolicy::none()).build().await;
    assert!(untrusting.is_err(), "a server certificate from an unknown CA is refused");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only the authenticated call reached the service");
}
