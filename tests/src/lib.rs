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

/// A large fixture from `$EXPLAIN_FIXTURES` (default `../shared/fixtures` beside the clone).
/// Panics when absent, so a test never passes without its reference.
pub fn shared_fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("EXPLAIN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "FIXTURE MISSING: {} is not there. Set EXPLAIN_FIXTURES to the folder holding the shared fixtures.",
        path.display()
    );
    path
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

/// A preprocessed-tensor image message for a `[1, 3, H, W]` array.
pub fn tensor_image(array: &ArrayD<f32>) -> proto::Image {
    let data: Vec<u8> = array.iter().flat_map(|v| v.to_le_bytes()).collect();
    proto::Image {
        source: Some(proto::image::Source::Tensor(proto::Tensor {
            shape: array.shape().iter().map(|&d| d as i64).collect(),
            dtype: proto::DataType::Float32 as i32,
            data: data.into(),
            quantization: None,
        })),
    }
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

/// Writes `model` to a fresh file under the system temp folder and returns its path.
pub fn write_model(model: &explain_proto::onnx::ModelProto, name: &str) -> PathBuf {
    use prost::Message;
    let dir = std::env::temp_dir().join(format!("explain-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).expect("write model");
    path
}
