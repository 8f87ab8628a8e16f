//! The Prometheus endpoint, as a scraper sees it: real calls move the counters, histograms and
//! gauges they should, and the exposition parses with the prometheus_client Python package's
//! parser (in the test virtual environment `scripts/test` builds).

use std::{collections::HashMap, io::Write, path::PathBuf, process::Stdio};

use explain_client::{Error, proto};
use explain_tests::{TestServer, encoded_image, http_get, options, sample_png, tiny_model, tool, workspace};

const CLASSIFY: &str = "explain.v1.ExplainService/Classify";
const EXPLAIN: &str = "explain.v1.ExplainService/Explain";

/// Samples by name and label set (`key=value` pairs, sorted, joined with commas).
type Samples = HashMap<(String, String), f64>;

/// Scrapes `/metrics` and parses it with prometheus_client's parser.
async fn scrape(server: &TestServer) -> Samples {
    let address = server.server.metrics_addr().expect("a metrics endpoint");
    let (head, body) = http_get(address, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let python: PathBuf = tool("EXPLAIN_PYTHON", ".cache/venv/bin/python");
    let mut parser = std::process::Command::new(python)
        .arg(workspace().join("tests/python/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    parser.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("exposition to the parser");
    let parsed = parser.wait_with_output().expect("parser output");
    assert!(
        parsed.status.success(),
        "the exposition does not parse: {}\n{body}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&parsed.stdout).expect("JSON samples");
    samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().expect("label value")))
                .collect();
            labels.sort();
            let name = sample["name"].as_str().expect("name").to_owned();
            ((name, labels.join(",")), sample["value"].as_f64().expect("value"))
        })
        .collect()
}

fn value(samples: &Samples, name: &str, labels: &str) -> f64 {
    samples.get(&(name.to_owned(), labels.to_owned())).copied().unwrap_or(0.0)
}

fn classify_request(image: proto::Image) -> proto::ClassifyRequest {
    proto::ClassifyRequest { image: Some(image), ..Default::default() }
}

#[tokio::test]
async fn real_calls_move_the_counters_a_scraper_reads() {
    let mut settings = options(tiny_model());
    settings.metrics_listen = Some("127.0.0.1:0".parse().expect("loopback"));
    let server = TestServer::start(settings).await;
    let before = scrape(&server).await;

    for _ in 0..2 {
        server.client.classify(classify_request(encoded_image(sample_png(80)))).await.expect("classify");
    }
    let refused = server.client.classify(classify_request(encoded_image(b"not an image".to_vec()))).await;
    assert!(matches!(refused, Err(Error::Status(ref status)) if status.code() == tonic::Code::InvalidArgument));
    let saliency = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::Saliency(proto::Saliency { absolute: false })),
    };
    let integrated_gradients = proto::AttributionSpec {
        method: Some(proto::attribution_spec::Method::IntegratedGradients(proto::IntegratedGradients {
            steps: 5,
            ..Default::default()
        })),
    };
    let request = proto::ExplainRequest {
        image: Some(encoded_image(sample_png(80))),
        attributions: vec![saliency, integrated_gradients],
        ..Default::default()
    };
    server.client.send(request).await.expect("explain");

    let after = scrape(&server).await;
    let moved = |name: &str, labels: &str| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("explain_calls_total", &format!("code=OK,rpc={CLASSIFY}")), 2.0);
    assert_eq!(moved("explain_calls_total", &format!("code=INVALID_ARGUMENT,rpc={CLASSIFY}")), 1.0);
    // A streamed answer is counted when its trailers pass.
    assert_eq!(moved("explain_calls_total", &format!("code=OK,rpc={EXPLAIN}")), 1.0);
    assert_eq!(moved("explain_call_seconds_count", &format!("rpc={CLASSIFY}")), 3.0);
    assert_eq!(moved("explain_call_seconds_bucket", &format!("le=+Inf,rpc={CLASSIFY}")), 3.0);
    // Rows are counted at admission, before the image is decoded: the refused call's row too.
    assert_eq!(moved("explain_rows_total", "method=image"), 4.0);
    assert_eq!(moved("explain_rows_total", "method=integrated_gradients"), 5.0);
    assert!(moved("explain_engine_run_seconds_count", "graph=forward") >= 2.0, "{after:?}");
    assert!(moved("explain_engine_batch_rows_sum", "graph=gradient") >= 6.0, "{after:?}");
    // Everything finished: no rows are held or queued.
    assert_eq!(value(&after, "explain_engine_admitted_rows", ""), 0.0);
    assert_eq!(value(&after, "explain_engine_queued_rows", ""), 0.0);
    let served = after.keys().find(|(name, _)| name == "explain_served").expect("explain_served");
    assert!(served.1.contains("execution_provider=CPUExecutionProvider"), "{served:?}");

    let address = server.server.metrics_addr().expect("a metrics endpoint");
    let (head, _) = http_get(address, "/elsewhere").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// Ablation-CAM runs a tail graph per layer, each made on first use. With one held at a time,
/// three calls at layers A, B, A make three sessions (A is dropped for B, then made again) and
/// hold one; the third call still answers.
#[tokio::test]
async fn sessions_made_on_first_use_are_bounded() {
    let mut settings = options(tiny_model());
    settings.metrics_listen = Some("127.0.0.1:0".parse().expect("loopback"));
    settings.load.max_lazy_graphs = 1;
    let server = TestServer::start(settings).await;
    for layer in ["layer4.1", "layer3.1", "layer4.1"] {
        let explanation =
            server.client.explain(sample_png(64)).ablation_cam(layer, false).send().await.expect("Ablation-CAM");
        assert!(explanation.tensors.contains_key(&format!("attribution/ablation_cam/{layer}")), "{layer}");
    }
    let after = scrape(&server).await;
    assert_eq!(value(&after, "explain_engine_lazy_sessions_made_total", "graph=tail"), 3.0, "{after:?}");
    assert_eq!(value(&after, "explain_engine_lazy_sessions", ""), 1.0, "{after:?}");
}
