//! `explaind augment` writes a gradient-augmented graph that any ONNX Runtime loads: the Python
//! `onnxruntime` (from the test virtual environment `scripts/test` builds) runs it and its
//! gradients match the torch/Captum references.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("service/ has a parent").to_owned()
}

/// `$VAR` if set, else `default` under the workspace; it must exist.
fn tool(var: &str, default: &str, installer: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| workspace().join(default));
    assert!(path.exists(), "{} is missing: run {installer} (it installs it) or set {var}", path.display());
    path
}

#[test]
fn the_augmented_graph_runs_in_python_onnxruntime() {
    let library = tool("EXPLAIN_ORT_LIBRARY", ".cache/onnxruntime/libonnxruntime.so.1.31.1", "./scripts/test");
    let python = tool("EXPLAIN_PYTHON", ".cache/venv/bin/python", "./scripts/test");
    let output = std::env::temp_dir().join(format!("explain-augmented-{}.onnx", std::process::id()));
    for model in ["tiny_resnet18_w8.dynamo.onnx", "tiny_resnet18_w8.legacy.onnx"] {
        let fixture = workspace().join("tests/fixtures").join(model);
        let status = Command::new(env!("CARGO_BIN_EXE_explaind"))
            .args(["--log-filter", "warn", "augment"])
            .arg(&fixture)
            .arg("-o")
            .arg(&output)
            .env("EXPLAIN_ORT_LIBRARY", &library)
            .status()
            .expect("explaind runs");
        assert!(status.success(), "explaind augment {model} failed");
        let check = Command::new(&python)
            .arg(workspace().join("tests/python/check_augmented.py"))
            .arg(&output)
            .arg(workspace().join("tests/fixtures/tiny_resnet18_w8.refs.npz"))
            .output()
            .expect("python runs");
        let report = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
        assert!(check.status.success(), "{model}: {report}");
        assert!(report.contains("grad.input: relative L2"), "{report}");
    }
    std::fs::remove_file(output).expect("clean up");
}
