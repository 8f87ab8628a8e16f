//! The real grpcurl binary (1.8.6, reflection v1alpha) against a real server: listing, describing,
//! health, and an `Explain` call given as JSON whose streamed chunks carry the same bytes the Rust
//! client receives.

use std::process::Command;

use base64::Engine;
use explain_client::proto;
use explain_service::model::ModelSource;
use explain_tests::{TestServer, encoded_image, feature_map, grpcurl, sample_png, tiny_model, tool, workspace};
use serde_json::Value;

/// Runs grpcurl with `args` (plaintext); returns stdout; fails on a non-zero exit.
async fn run(mut args: Vec<String>) -> String {
    args.insert(0, "-plaintext".into());
    let output = grpcurl(args.clone(), None).await;
    assert!(output.success, "grpcurl {args:?} failed: {}{}", output.stdout, output.stderr);
    output.stdout
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn grpcurl_lists_describes_and_checks_health() {
    let server = TestServer::with_model(ModelSource::Embedded).await;
    let address = server.address();
    let services = run(args(&[&address, "list"])).await;
    assert!(services.lines().any(|line| line == "explain.v1.ExplainService"), "{services}");
    assert!(services.lines().any(|line| line == "grpc.health.v1.Health"), "{services}");

    let described = run(args(&[&address, "describe", "explain.v1.ExplainService"])).await;
    for rpc in ["GetModelInfo", "Classify", "Explain", "ExplainStream"] {
        assert!(described.contains(&format!("rpc {rpc} ")), "{described}");
    }

    let health =
        run(args(&["-d", r#"{"service":"explain.v1.ExplainService"}"#, &address, "grpc.health.v1.Health/Check"])).await;
    assert!(health.contains("SERVING") && !health.contains("NOT_SERVING"), "{health}");

    let info: Value =
        serde_json::from_str(&run(args(&[&address, "explain.v1.ExplainService/GetModelInfo"])).await).expect("json");
    assert_eq!(info["layers"].as_array().map(Vec::len), Some(11));
    assert_eq!(info["layerNaming"], "LAYER_NAMING_RESNET");
}

#[tokio::test]
async fn grpcurl_explain_streams_the_chunks_the_client_gets() {
    let server = TestServer::with_model(tiny_model()).await;
    let png = sample_png(96);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
    let body =
        format!(r#"{{"image":{{"encoded":"{encoded}"}},"featureMaps":[{{"layer":"layer2.1","topK":4}}],"topK":3}}"#);
    let output = run(args(&["-d", &body, &server.address(), "explain.v1.ExplainService/Explain"])).await;
    let messages: Vec<Value> = serde_json::Deserializer::from_str(&output)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("json stream");

    assert!(messages.first().is_some_and(|m| m.get("prediction").is_some()), "prediction first: {output}");
    assert!(messages.last().is_some_and(|m| m.get("summary").is_some()), "summary last: {output}");
    let chunks: Vec<&Value> = messages.iter().filter_map(|m| m.get("tensorChunk")).collect();
    assert_eq!(chunks.len(), 1, "16 bytes × 4 channels × 8 × 8 fit in one chunk");
    let chunk = chunks[0];
    assert_eq!(chunk["name"], "activation/layer2.1");
    assert_eq!(chunk["shape"], serde_json::json!(["1", "4", "8", "8"]));
    assert_eq!(chunk["dtype"], "DATA_TYPE_FLOAT32");
    assert_eq!(chunk["totalBytes"], "1024");
    let grpcurl_bytes =
        base64::engine::general_purpose::STANDARD.decode(chunk["data"].as_str().expect("data")).expect("base64");

    let request = proto::ExplainRequest {
        image: Some(encoded_image(png)),
        feature_maps: vec![proto::FeatureMapSpec {
            channels: Some(proto::feature_map_spec::Channels::TopK(4)),
            ..feature_map("layer2.1")
        }],
        ..Default::default()
    };
    let explanation = server.client.send(request).await.expect("explain");
    let tensor = &explanation.tensors["activation/layer2.1"];
    let client_bytes: Vec<u8> = tensor.array.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(grpcurl_bytes, client_bytes);
    let indices: Vec<u64> =
        chunk["channelIndices"].as_array().expect("indices").iter().filter_map(Value::as_u64).collect();
    assert_eq!(indices, tensor.channel_indices.iter().map(|&c| u64::from(c)).collect::<Vec<_>>());
}

/// The grpcurl lines of the README's session, with `localhost:50051` replaced by `address`.
fn readme_session(address: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    let session = readme.split("<!-- grpcurl-session").nth(1).expect("README has a grpcurl session");
    let block = session.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a sh block");
    block
        .lines()
        .filter(|line| line.starts_with("grpcurl "))
        .map(|line| line.replace("localhost:50051", address))
        .collect()
}

#[tokio::test]
async fn the_readme_session_works_when_pasted() {
    let server = TestServer::with_model(ModelSource::Embedded).await;
    let lines = readme_session(&server.address());
    assert_eq!(lines.len(), 6, "{lines:?}");
    let bin = tool("EXPLAIN_GRPCURL", ".cache/bin/grpcurl").parent().expect("grpcurl's folder").to_owned();
    for line in lines {
        let output = tokio::task::spawn_blocking({
            let (line, bin) = (line.clone(), bin.clone());
            move || {
                let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
                let mut command = Command::new("bash");
                command.arg("-c").arg(&line).env("PATH", path).current_dir(workspace());
                command.output().expect("bash runs")
            }
        })
        .await
        .expect("task");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "`{line}` failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        let expected: &[&str] = if line.contains("featureMaps") {
            &["activation/layer2.1", "attribution/grad_cam/layer4.1/upsampled"]
        } else if line.contains("OBJECTIVE_CROSS_ENTROPY") {
            &["attribution/saliency", "attribution/integrated_gradients", "attribution/integrated_gradients/delta"]
        } else {
            &[]
        };
        for name in expected {
            assert!(stdout.contains(&format!("\"name\": \"{name}\"")), "{name} missing: {stdout}");
        }
        if line.contains("/Explain") {
            assert!(stdout.contains("\"summary\""), "{stdout}");
            // The sample is a star, and the embedded model is trained to say so.
            let prediction: Value = serde_json::Deserializer::from_str(&stdout)
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
                .expect("a first message");
            let target = &prediction["prediction"]["target"];
            assert_eq!(target["label"], "star", "{stdout}");
            assert!(target["probability"].as_f64().is_some_and(|p| p > 0.9), "{stdout}");
        }
    }
}
