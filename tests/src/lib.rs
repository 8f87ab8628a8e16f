//! Test harness: a real explain server on 127.0.0.1:0 with a client connected to it, the
//! reference fixtures (small ones in `tests/fixtures/`, large ones in `$EXPLAIN_FIXTURES`,
//! default `../shared/fixtures`), and tensor comparisons. Missing prerequisites fail loudly.

pub mod graphs;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use explain_client::{Client, proto};
use explain_service::{
    config::default_serve_config,
    model::ModelSource,
    server::{self, RunningServer, ServeOptions},
};
use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::NpzReader;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// A tool the tests need: `$VAR` if set, else `default` under the workspace, where
/// `./scripts/test` installs it. Panics, saying how to get it, when it is not there.
pub fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| workspace().join(default));
    assert!(path.exists(), "{} is missing: run ./scripts/test (it installs it) or set {var}", path.display());
    path
}

/// The ONNX Runtime library.
pub fn ort_library() -> PathBuf {
    tool("EXPLAIN_ORT_LIBRARY", ".cache/onnxruntime/libonnxruntime.so.1.31.1")
}

/// A small fixture kept in the repository (`tests/fixtures/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    let path = workspace().join("tests/fixtures").join(name);
    assert!(path.is_file(), "fixture {} is missing from the repository", path.display());
    path
}

/// The tiny ResNet-18 fixture (widths 8/16/32/64, 10 classes, 64 × 64, random weights): the model
/// of the tests about serving mechanics, fast to run and with shapes they can spell out. The tests
/// of the embedded default model itself use `ModelSource::Embedded`.
pub fn tiny_model() -> ModelSource {
    ModelSource::File(fixture("tiny_resnet18_w8.legacy.onnx"))
}

/// Large fixtures from `$EXPLAIN_FIXTURES` (default `../shared/fixtures` beside the clone), all
/// of `names` or none. When one is absent the test must not pass silently: under CI (`CI` set) it
/// panics; on a user's bare clone it prints a loud SKIPPED line naming the folder and returns
/// `None`, and the caller returns.
pub fn shared_fixtures<const N: usize>(names: [&str; N]) -> Option<[PathBuf; N]> {
    let dir = std::env::var_os("EXPLAIN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures"));
    let paths = names.map(|name| dir.join(name));
    let missing: Vec<String> = paths.iter().filter(|path| !path.is_file()).map(|p| p.display().to_string()).collect();
    if missing.is_empty() {
        return Some(paths);
    }
    let message = format!(
        "FIXTURE MISSING: {} not there. Set EXPLAIN_FIXTURES to the folder holding the shared fixtures.",
        missing.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("SKIPPED: {message}\n").as_bytes());
    None
}

/// Server options for tests: the given model, a free port on loopback, the test ORT library.
pub fn options(model: ModelSource) -> ServeOptions {
    let mut options = default_serve_config().serve_options();
    options.listen = "127.0.0.1:0".parse().expect("loopback address");
    options.load.model = model;
    options.load.ort.library = ort_library();
    options.load.ort.intra_op_threads = 1;
    options.load.cache_dir = None;
    options
}

/// A running server and a client connected to it.
pub struct TestServer {
    /// The server.
    pub server: RunningServer,
    /// A connected client.
    pub client: Client,
}

impl TestServer {
    /// Starts a server with `options`, waits for its model, connects a client.
    pub async fn start(options: ServeOptions) -> Self {
        let mut server = server::start(options).await.expect("server starts");
        server.ready().await.expect("model loads");
        let client = Client::connect(format!("http://{}", server.local_addr())).await.expect("client connects");
        Self { server, client }
    }

    /// Starts a server on `model` with default test options.
    pub async fn with_model(model: ModelSource) -> Self {
        Self::start(options(model)).await
    }

    /// The server's `host:port`.
    pub fn address(&self) -> String {
        self.server.local_addr().to_string()
    }
}

/// Reference arrays of an `.npz` file, as f32.
pub struct Refs {
    arrays: BTreeMap<String, ArrayD<f32>>,
    target: Vec<i64>,
}

impl Refs {
    /// Reads every float32 array of `path` and its int64 `target`.
    pub fn load(path: &Path) -> Self {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let mut npz = NpzReader::new(file).expect("an npz archive");
        let names = npz.names().expect("npz names");
        let mut arrays = BTreeMap::new();
        let mut target = Vec::new();
        for name in names {
            if name == "target" {
                let array: ArrayD<i64> = npz.by_name(&name).expect("int64 target");
                target = array.iter().copied().collect();
            } else {
                arrays.insert(name.clone(), npz.by_name(&name).unwrap_or_else(|e| panic!("{name}: {e}")));
            }
        }
        Self { arrays, target }
    }

    /// The array called `name`.
    pub fn get(&self, name: &str) -> &ArrayD<f32> {
        self.arrays.get(name).unwrap_or_else(|| panic!("reference `{name}` is not in the archive"))
    }

    /// Row `index` of array `name`, keeping a batch dimension of 1.
    pub fn row(&self, name: &str, index: usize) -> ArrayD<f32> {
        self.get(name).index_axis(Axis(0), index).insert_axis(Axis(0)).to_owned()
    }

    /// The names of the arrays that start with `prefix`, without it, in name order.
    pub fn names_after(&self, prefix: &str) -> Vec<String> {
        self.arrays.keys().filter_map(|name| name.strip_prefix(prefix)).map(str::to_owned).collect()
    }

    /// Number of images.
    pub fn images(&self) -> usize {
        self.get("input").shape()[0]
    }

    /// The reference target class of image `index`.
    pub fn target(&self, index: usize) -> u32 {
        u32::try_from(self.target[index]).expect("target is a class index")
    }
}

/// ‖a − b‖₂ / ‖b‖₂ (shapes must match).
pub fn relative_l2(actual: &ArrayD<f32>, expected: &ArrayD<f32>) -> f64 {
    assert_eq!(actual.shape(), expected.shape(), "shapes differ");
    let (mut diff, mut norm) = (0.0_f64, 0.0_f64);
    for (&a, &e) in actual.iter().zip(expected.iter()) {
        diff += (f64::from(a) - f64::from(e)).powi(2);
        norm += f64::from(e).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// A preprocessed-tensor image message for a `[1, 3, H, W]` array (the SDK's encoding).
pub fn tensor_image(array: &ArrayD<f32>) -> proto::Image {
    explain_client::ImageInput::from(array).into_proto()
}

/// An encoded-image message.
pub fn encoded_image(bytes: Vec<u8>) -> proto::Image {
    proto::Image { source: Some(proto::image::Source::Encoded(bytes.into())) }
}

/// A feature-map request for every channel of `layer`.
pub fn feature_map(layer: &str) -> proto::FeatureMapSpec {
    proto::FeatureMapSpec { layer: layer.to_owned(), ..Default::default() }
}

/// A small PNG: a yellow disc on blue, `size`×`size` pixels.
pub fn sample_png(size: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(size, size, |x, y| {
        let (cx, cy, r) = (size as f32 / 2.0, size as f32 / 2.0, size as f32 / 3.0);
        if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r {
            image::Rgb([250, 200, 0])
        } else {
            image::Rgb([30, 60, 200])
        }
    });
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode png");
    bytes
}

/// An array of the given shape from a flat vector.
pub fn array(shape: &[usize], values: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), values).expect("shape matches")
}

/// A certificate authority with a server certificate for `localhost` and a client certificate,
/// as PEM.
pub struct Pki {
    /// The CA certificate.
    pub ca: String,
    /// The server's certificate, for `localhost` (and 127.0.0.1).
    pub server_cert: String,
    /// The server's key.
    pub server_key: String,
    /// A client certificate signed by the CA.
    pub client_cert: String,
    /// Its key.
    pub client_key: String,
}

impl Pki {
    /// A fresh CA and its certificates.
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
        let issuer = Issuer::from_params(&ca, &ca_key);
        let leaf = |names: &[&str]| {
            let key = KeyPair::generate().expect("key");
            let names = names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
            let certificate = CertificateParams::new(names).expect("params").signed_by(&key, &issuer).expect("sign");
            (certificate.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(&["localhost", "127.0.0.1"]);
        let (client_cert, client_key) = leaf(&["client"]);
        Self { ca: ca_pem, server_cert, server_key, client_cert, client_key }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// What `grpc.health.v1.Health/Check` says of the explain service at `address`, asked as a
/// Kubernetes gRPC probe asks: no reflection, no token.
pub async fn health(address: &str) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = tonic_health::pb::HealthCheckRequest { service: explain_proto::SERVICE_NAME.into() };
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    Ok(client.check(request).await?.into_inner().status)
}

/// `explaind` as a process of its own, for tests that signal or kill it: `binary` is the path
/// Cargo gives integration tests (`env!("CARGO_BIN_EXE_explaind-under-test")`). It runs on this
/// checkout's ONNX Runtime, without a graph cache, with one ONNX Runtime thread, logging at
/// `warn`; add the subcommand and its flags.
pub fn explaind(binary: &str) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .args(["--log-filter", "warn"])
        .env("EXPLAIN_ORT_LIBRARY", ort_library())
        .env("EXPLAIN_NO_CACHE", "1")
        .env("EXPLAIN_INTRA_OP_THREADS", "1")
        .stdout(std::process::Stdio::null());
    command
}

/// Waits until the server at `address` (`host:port`) answers SERVING, for at most a minute.
pub async fn until_serving(address: &str) {
    let started = std::time::Instant::now();
    while !matches!(health(address).await, Ok(1)) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{address} did not start serving");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Calls `path` (`/package.Service/Method`) on the plaintext server at `address` with one
/// encoded request message and extra `headers`, over a bare HTTP/2 connection with no client-side
/// timers, so that only the server enforces a `grpc-timeout` it is sent. Returns the call's
/// `grpc-status` and `grpc-message`, from the trailers or a trailers-only response.
pub async fn bare_grpc_call(address: &str, path: &str, message: &[u8], headers: &[(&str, &str)]) -> (i32, String) {
    let socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    let (client, connection) = h2::client::handshake(socket).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let mut request = http::Request::post(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut body) = client.send_request(request.body(()).expect("request"), false).expect("send");
    let mut framed = vec![0_u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(message);
    body.send_data(bytes::Bytes::from(framed), true).expect("send body");
    let response = response.await.expect("response");
    let status_of = |headers: &http::HeaderMap| {
        let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or_default();
        Some((code, message.to_owned()))
    };
    if let Some(status) = status_of(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let _ = data.expect("body");
    }
    let trailers = body.trailers().await.expect("trailers").expect("a gRPC call ends with trailers");
    status_of(&trailers).expect("grpc-status in the trailers")
}

/// What one grpcurl run said.
#[derive(Debug)]
pub struct GrpcurlOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (grpcurl reports a call's status there).
    pub stderr: String,
}

/// Runs the grpcurl that `./scripts/test` installs (`$EXPLAIN_GRPCURL`) with `args`, writing
/// `stdin` to it when given (for `-d @`), in a blocking task, at most 60 s.
pub async fn grpcurl(args: Vec<String>, stdin: Option<String>) -> GrpcurlOutput {
    use std::{
        io::Write,
        process::{Command, Stdio},
    };
    let grpcurl = tool("EXPLAIN_GRPCURL", ".cache/bin/grpcurl");
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(grpcurl)
            .args(["-max-time", "60"])
            .args(&args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grpcurl runs");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write grpcurl's input");
        }
        let output = child.wait_with_output().expect("grpcurl ends");
        GrpcurlOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("grpcurl task")
}

/// A fresh folder under the system temp folder for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("explain-tests-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

/// Writes `model` to a fresh file under the system temp folder and returns its path.
pub fn write_model(model: &explain_proto::onnx::ModelProto, name: &str) -> PathBuf {
    use prost::Message;
    let dir = std::env::temp_dir().join(format!("explain-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).expect("write model");
    path
}

/// An HTTP/1.1 GET of `path` at `address` (the metrics endpoint), answered with its status line
/// and headers, and its body.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect to the HTTP endpoint");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.to_owned(), body.to_owned())
}
