//! The bad-input corpus (`tests/corpus/`): every case is sent with grpcurl as an operator would,
//! as JSON, and must get exactly its status — INVALID_ARGUMENT with a message naming its field,
//! or OK for unusual but valid images — with the server still serving after all of them.
//! `--nocapture` prints the table docs/reliability.md shows.

use std::path::Path;

use base64::Engine;
use explain_tests::{GrpcurlOutput, TestServer, grpcurl, sample_png, tiny_model, workspace};
use serde_json::Value;

/// Replaces the corpus placeholders: `"@FILE"` (an image of `tests/corpus/images/`, base64),
/// `"@zeros:N"` / `"@nan:N"` / `"@inf:N"` (N bytes of little-endian f32 values, base64), and
/// `{"@repeat": [N, ITEM]}` (an array of N copies).
fn expand(value: Value, images: &Path) -> Value {
    let base64 = |bytes: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    let floats = |count: &str, value: f32| {
        let count: usize = count.parse().expect("a byte count");
        value.to_le_bytes().iter().copied().cycle().take(count).collect::<Vec<u8>>()
    };
    match value {
        Value::String(text) if text.starts_with('@') => {
            let spec = &text[1..];
            if let Some(count) = spec.strip_prefix("zeros:") {
                base64(&floats(count, 0.0))
            } else if let Some(count) = spec.strip_prefix("nan:") {
                base64(&floats(count, f32::NAN))
            } else if let Some(count) = spec.strip_prefix("inf:") {
                base64(&floats(count, f32::INFINITY))
            } else {
                let path = images.join(spec);
                base64(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            }
        }
        Value::Object(map) if map.contains_key("@repeat") => {
            let Value::Array(spec) = &map["@repeat"] else { panic!("@repeat takes [N, ITEM]") };
            let count = spec[0].as_u64().expect("a count") as usize;
            Value::Array(vec![expand(spec[1].clone(), images); count])
        }
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, expand(v, images))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| expand(v, images)).collect()),
        other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => other,
    }
}

/// The status grpcurl reports for a call: `("OK", "")` or its error's code and message.
fn outcome(success: bool, stderr: &str) -> (String, String) {
    if success {
        return ("OK".into(), String::new());
    }
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|line| line.trim().strip_prefix(name).map(|rest| rest.trim().to_owned()))
            .unwrap_or_default()
    };
    (field("Code:"), field("Message:"))
}

#[tokio::test]
async fn every_bad_input_of_the_corpus_gets_its_exact_status() {
    let server = TestServer::with_model(tiny_model()).await;
    let root = workspace().join("tests/corpus");
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).expect("cases.json")).expect("JSON");
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    println!("| case | RPC | status | message |\n|---|---|---|---|");
    for case in cases {
        let name = case["name"].as_str().expect("name").to_owned();
        let rpc = case["rpc"].as_str().expect("rpc").to_owned();
        let request = expand(case["request"].clone(), &root.join("images")).to_string();
        let (code, field) =
            (case["code"].as_str().expect("code").to_owned(), case["field"].as_str().map(str::to_owned));
        let args = ["-plaintext", "-max-msg-sz", "67108864", "-d", "@", &server.address()].map(str::to_owned);
        let mut args = args.to_vec();
        args.push(format!("explain.v1.ExplainService/{rpc}"));
        let GrpcurlOutput { success, stderr, .. } = grpcurl(args, Some(request)).await;
        let (got, message) = outcome(success, &stderr);
        println!(
            "| `{name}` | {} | {got} | {} |",
            case["rpc"].as_str().unwrap_or_default(),
            message.replace('|', "\\|")
        );
        let named = field.as_ref().is_none_or(|field| message.starts_with(&format!("{field}:")));
        if got != code || !named {
            failures.push(format!("{name}: expected {code} naming {field:?}, got {got}: {message} {stderr}"));
        }
    }
    assert!(failures.is_empty(), "{} cases answered wrongly:\n{}", failures.len(), failures.join("\n"));
    let explanation = server.client.send(explain_client::proto::ExplainRequest {
        image: Some(explain_tests::encoded_image(sample_png(64))),
        ..Default::default()
    });
    explanation.await.expect("the server still serves after the whole corpus");
}
