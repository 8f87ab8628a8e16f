//! OpenTelemetry export: `explaind --otlp-endpoint` sends a `call` span per call to an OTLP/gRPC
//! collector (here a fake one, in the test) carrying the RPC, the caller's `x-request-id`, the
//! status code and the server's timings; the batch is flushed when the server stops on SIGTERM.

use std::{
    net::SocketAddr,
    process::Command,
    sync::{Arc, Mutex},
};

use explain_client::{Client, proto};
use explain_tests::{encoded_image, explaind, sample_png, until_serving};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
    trace::v1::Span,
};
use tokio_stream::wrappers::TcpListenerStream;

/// A collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request.into_inner().resource_spans.into_iter().flat_map(|resource| resource.scope_spans);
        self.0.lock().expect("spans").extend(spans.flat_map(|scope| scope.spans));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|attribute| attribute.key == key)?.value.as_ref()?;
    match value {
        AnyValue { value: Some(Value::StringValue(text)) } => Some(text.clone()),
        AnyValue { value: Some(Value::IntValue(number)) } => Some(number.to_string()),
        AnyValue { value: Some(Value::DoubleValue(number)) } => Some(number.to_string()),
        AnyValue { value: Some(other) } => Some(format!("{other:?}")),
        AnyValue { value: None } => None,
    }
}

#[tokio::test]
async fn each_call_is_exported_as_a_span_with_its_request_id_and_timings() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("collector port");
    let collector_address = listener.local_addr().expect("address");
    let collector = Collector::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = explaind(env!("CARGO_BIN_EXE_explaind-under-test"))
        .arg("--otlp-endpoint")
        .arg(format!("http://{collector_address}"))
        .args(["serve", "--listen"])
        .arg(address.to_string())
        .spawn()
        .expect("explaind starts");
    until_serving(&address.to_string()).await;

    let mut client = Client::connect(format!("http://{address}")).await.expect("client");
    let mut request = tonic::Request::new(proto::ClassifyRequest {
        image: Some(encoded_image(sample_png(64))),
        ..Default::default()
    });
    request.metadata_mut().insert("x-request-id", "trace-test-7".parse().expect("metadata"));
    client.raw().classify(request).await.expect("classify");

    let status = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status().expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || server.wait()).await.expect("task").expect("exit");
    assert!(exit.success(), "{exit:?}");

    let spans = collector.0.lock().expect("spans").clone();
    let call = spans
        .iter()
        .find(|span| span.name == "call" && attribute(span, "request_id").as_deref() == Some("trace-test-7"))
        .unwrap_or_else(|| {
            panic!("no call span with the request id among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
        });
    assert_eq!(attribute(call, "rpc").as_deref(), Some("explain.v1.ExplainService/Classify"));
    assert_eq!(attribute(call, "code").as_deref(), Some("Ok"));
    for timing in ["elapsed_ms", "queue_ms", "inference_ms", "preprocess_ms"] {
        let value: f64 = attribute(call, timing).unwrap_or_else(|| panic!("no {timing}")).parse().expect("a number");
        assert!(value >= 0.0, "{timing} {value}");
    }
    assert!(call.end_time_unix_nano >= call.start_time_unix_nano);
}
