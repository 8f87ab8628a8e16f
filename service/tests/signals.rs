//! The `explaind` binary and its signals: SIGTERM while the model loads (with callers probing)
//! never leads to SERVING, the drain delay keeps the process up, and a second SIGTERM exits at
//! once. Uses the ONNX Runtime library and grpcurl that `./scripts/test` installs.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn installed(var: &str, default: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| root.join(default));
    assert!(path.exists(), "{} is missing: run ./scripts/test (it installs it) or set {var}", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// What health says, or `None` while nothing answers.
fn health(port: u16) -> Option<String> {
    let output = Command::new(installed("EXPLAIN_GRPCURL", ".cache/bin/grpcurl"))
        .args(["-plaintext", "-max-time", "2", "-d", r#"{"service": "explain.v1.ExplainService"}"#])
        .arg(format!("127.0.0.1:{port}"))
        .arg("grpc.health.v1.Health/Check")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    ["NOT_SERVING", "SERVING"].into_iter().find(|status| text.contains(&format!("\"{status}\""))).map(str::to_owned)
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// `explaind serve` on the embedded model at `port`, with `extra` flags.
fn explaind(port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_explaind"))
        .args(["--log-filter", "warn", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("EXPLAIN_ORT_LIBRARY", installed("EXPLAIN_ORT_LIBRARY", ".cache/onnxruntime/libonnxruntime.so.1.31.1"))
        .env("EXPLAIN_NO_CACHE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explaind starts")
}

#[test]
fn sigterm_during_loading_never_serves_and_a_second_signal_exits_at_once() {
    let port = free_port();
    let mut child = explaind(port, &["--drain-delay-secs", "30"]);
    // Probe as a load balancer would until the listener answers, then signal: the model is still
    // loading (or has just loaded) and health must never say SERVING from then on.
    let started = Instant::now();
    while health(port).is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the listener never answered");
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&child);
    let signalled = Instant::now();
    while signalled.elapsed() < Duration::from_secs(3) {
        assert_eq!(health(port).as_deref(), Some("NOT_SERVING"), "health after SIGTERM");
        assert!(child.try_wait().expect("wait").is_none(), "the drain delay keeps the process up");
    }
    sigterm(&child);
    let second = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(130), "{status:?}");
            break;
        }
        assert!(second.elapsed() < Duration::from_secs(5), "a second signal must exit at once");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_after_loading_drains_and_exits_cleanly() {
    let port = free_port();
    let mut child = explaind(port, &[]);
    let started = Instant::now();
    while health(port).as_deref() != Some("SERVING") {
        assert!(started.elapsed() < Duration::from_secs(60), "never SERVING");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
