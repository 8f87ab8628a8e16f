//! Cross-language check: a Python client generated from the proto with grpcio-tools (in the test
//! virtual environment `scripts/test` builds) calls a real server and checks its results against
//! the torch references.

use std::{path::PathBuf, process::Command};

use explain_tests::{TestServer, fixture, tiny_model, tool, workspace};

fn python() -> PathBuf {
    tool("EXPLAIN_PYTHON", ".cache/venv/bin/python")
}

#[tokio::test]
async fn a_generated_python_client_gets_the_same_results() {
    let server = TestServer::with_model(tiny_model()).await;
    let stubs = std::env::temp_dir().join(format!("explain-python-stubs-{}", std::process::id()));
    std::fs::create_dir_all(&stubs).expect("stub folder");
    let proto = workspace().join("proto");
    // Files are named relative to the include paths, as imports name them.
    let generated = Command::new(python())
        .current_dir(&proto)
        .args(["-m", "grpc_tools.protoc", "-I", ".", "-I", "third_party"])
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .args(["explain/v1/explain.proto", "google/rpc/status.proto"])
        .output()
        .expect("grpc_tools runs");
    assert!(generated.status.success(), "protoc: {}", String::from_utf8_lossy(&generated.stderr));

    let address = server.address();
    let script = workspace().join("tests/python/explain_client.py");
    let refs = fixture("tiny_resnet18_w8.refs.npz");
    let output = tokio::task::spawn_blocking({
        let (stubs, python) = (stubs.clone(), python());
        move || {
            Command::new(python)
                .arg(script)
                .arg(address)
                .arg(refs)
                .env("PYTHONPATH", stubs)
                .output()
                .expect("python runs")
        }
    })
    .await
    .expect("task");
    std::fs::remove_dir_all(&stubs).expect("clean up");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Python client's checks failed: {report}");
    assert!(report.contains("\"saliency_relative_l2\""), "{report}");
}
