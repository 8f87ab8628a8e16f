//! Command line and environment: one clap struct per command, every field a `--flag` and an
//! `EXPLAIN_*` environment variable. `explaind serve` with no flags serves the embedded model.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::BoolishValueParser};

use crate::{
    engine::{ExecutionProviderChoice, OrtOptions},
    explain::{Limits, LoadOptions},
    model::ModelSource,
    preprocess::ImageLimits,
    server::{Http2Settings, OpenServices, ServeOptions, TlsFiles},
};

/// explaind: a gRPC service that shows what a convolutional network sees.
#[derive(Debug, Parser)]
#[command(name = "explaind", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging.
    #[command(flatten)]
    pub log: LogConfig,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the explain.v1 API.
    Serve(Box<ServeConfig>),
    /// Write one of the graphs the service runs for a model — by default the gradient-augmented
    /// graph (forward and backward pass in one ONNX graph) — for offline use in any ONNX Runtime.
    Augment(AugmentConfig),
    /// Write a copy of a model whose learned weights are redrawn with seeded noise from a layer up
    /// to the logits: the cascading parameter-randomisation test (Adebayo et al. 2018). Serve it
    /// and compare its maps with `explain eval --compare-endpoint`.
    Randomise(RandomiseConfig),
}

/// Which of the service's graphs `explaind augment` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphChoice {
    /// Forward and backward pass down to the input; gradients of the input and every layer.
    #[default]
    Gradient,
    /// Forward pass and the backward pass down to the last feature layer only (ResNets).
    Head,
    /// The forward pass with every named layer as an output.
    Forward,
    /// Forward and backward pass down to the input with DeepLift's rescale rule at the
    /// nonlinearities; rows are pairs of an input and its reference.
    DeepLift,
}

/// Settings of `explaind augment`.
#[derive(Clone, Debug, Args)]
pub struct AugmentConfig {
    /// The model: an ONNX export.
    pub model: PathBuf,
    /// Where to write the ONNX graph.
    #[arg(short, long, required_unless_present = "check")]
    pub output: Option<PathBuf>,
    /// Write nothing: print the model's layers and whether its gradients and its DeepLift graph
    /// can be built (and, if not, which op of which node blocks them); exit with status 1 if the
    /// model has no gradients.
    #[arg(long, conflicts_with_all = ["output", "graph"])]
    pub check: bool,
    /// Which graph to write.
    #[arg(long, value_enum, default_value_t = GraphChoice::Gradient)]
    pub graph: GraphChoice,
    /// Input height and width in pixels, for models whose graph leaves them open.
    #[arg(long, env = "EXPLAIN_INPUT_SIZE")]
    pub input_size: Option<u32>,
    /// ONNX Runtime shared library (used to measure tensor shapes). Default: $ORT_DYLIB_PATH,
    /// else `libonnxruntime.so`.
    #[arg(long, env = "EXPLAIN_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
}

impl AugmentConfig {
    /// ONNX Runtime settings for measuring shapes (CPU).
    pub fn ort_options(&self) -> OrtOptions {
        OrtOptions {
            library: ort_library(self.ort_library.as_ref()),
            execution_provider: ExecutionProviderChoice::Cpu,
            require_cuda: false,
            intra_op_threads: 0,
            intra_op_spinning: false,
            allow_tf32: false,
        }
    }
}

/// Settings of `explaind randomise`.
#[derive(Clone, Debug, Args)]
pub struct RandomiseConfig {
    /// The model: an ONNX export (default: the embedded default model).
    pub model: Option<PathBuf>,
    /// The lowest layer redrawn, by the name `GetModelInfo` lists (e.g. `layer4.1`); `head` for
    /// the classifier after the last layer only.
    #[arg(long)]
    pub from: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Input height and width in pixels, for models whose graph leaves them open.
    #[arg(long, env = "EXPLAIN_INPUT_SIZE")]
    pub input_size: Option<u32>,
}

/// The ONNX Runtime library: the flag, else $ORT_DYLIB_PATH, else `libonnxruntime.so`.
fn ort_library(flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, Args)]
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "EXPLAIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `explain_service=debug,info`.
    /// ONNX Runtime's own messages log under the `ort` target.
    #[arg(long, env = "EXPLAIN_LOG", default_value = "info,ort=warn", global = true)]
    pub log_filter: String,
    /// OpenTelemetry collector to export traces to over OTLP/gRPC, e.g. `http://otel-collector:4317`:
    /// a `call` span per call (its RPC, `x-request-id`, status code and timings). Default: none.
    #[arg(long, env = "EXPLAIN_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// Settings of `explaind serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    /// ONNX model to serve (a `torch.onnx.export` ResNet, dynamo or legacy exporter). Default: the
    /// embedded ResNet-18 (base width 16, 112×112 input) trained on the ten shapes of `tools/shapes`.
    #[arg(long, env = "EXPLAIN_MODEL")]
    pub model: Option<PathBuf>,
    /// Class labels, one per line in class order.
    #[arg(long, env = "EXPLAIN_LABELS")]
    pub labels: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "EXPLAIN_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`, HTTP, no authentication: keep
    /// it on a network only scrapers reach). Default: no endpoint.
    #[arg(long, env = "EXPLAIN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// ONNX Runtime shared library. Default: $ORT_DYLIB_PATH, else `libonnxruntime.so` on the
    /// library search path.
    #[arg(long, env = "EXPLAIN_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
    /// Execution provider: `auto` uses CUDA when the runtime has it, else CPU.
    #[arg(long, env = "EXPLAIN_EXECUTION_PROVIDER", value_enum, default_value_t = ExecutionProviderChoice::Auto)]
    pub execution_provider: ExecutionProviderChoice,
    /// Refuse to start, instead of falling back to CPU, when CUDA cannot be used.
    #[arg(long, env = "EXPLAIN_REQUIRE_CUDA", value_parser = BoolishValueParser::new())]
    pub require_cuda: bool,
    /// Refuse to start, instead of serving predictions and activations only, when the model
    /// cannot be differentiated.
    #[arg(long, env = "EXPLAIN_REQUIRE_GRADIENTS", value_parser = BoolishValueParser::new())]
    pub require_gradients: bool,
    /// Threads for per-request CPU work (decoding, filling IG/SmoothGrad rows, post-processing,
    /// rendering), off the async runtime; 0: one per core.
    #[arg(long, env = "EXPLAIN_COMPUTE_THREADS", default_value_t = 0)]
    pub compute_threads: usize,
    /// Threads ONNX Runtime uses inside one operator; 0 lets it choose (one per core).
    #[arg(long, env = "EXPLAIN_INTRA_OP_THREADS", default_value_t = 0)]
    pub intra_op_threads: usize,
    /// Let ONNX Runtime's intra-op threads spin for work between the operators of a run instead of
    /// sleeping (runs 5–10 % faster on a 2-core CPU); they stop spinning when the run ends,
    /// leaving the cores to the gRPC stack between runs. `false` for the least CPU use.
    #[arg(
        long,
        env = "EXPLAIN_INTRA_OP_SPINNING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub intra_op_spinning: bool,
    /// On CUDA, let float32 convolutions and matrix products use TF32 (faster; relative error
    /// around 1e-3 instead of 1e-6). Off by default.
    #[arg(long, env = "EXPLAIN_ALLOW_TF32", value_parser = BoolishValueParser::new())]
    pub allow_tf32: bool,
    /// Input height and width in pixels, for models whose graph leaves them open.
    #[arg(long, env = "EXPLAIN_INPUT_SIZE")]
    pub input_size: Option<u32>,
    /// Encoded images: resize the shorter side to this before the centre crop. Default: 256/224 of
    /// the input size (256 for 224).
    #[arg(long, env = "EXPLAIN_RESIZE_SIZE")]
    pub resize_size: Option<u32>,
    /// Normalisation mean per RGB channel, comma-separated.
    #[arg(long, env = "EXPLAIN_MEAN", value_parser = parse_triple, default_value = "0.485,0.456,0.406")]
    pub mean: Triple,
    /// Normalisation standard deviation per RGB channel, comma-separated.
    #[arg(long, env = "EXPLAIN_STD", value_parser = parse_triple, default_value = "0.229,0.224,0.225")]
    pub std: Triple,
    /// Rows (images, IG steps, SmoothGrad samples) of admitted, unfinished requests: a request
    /// holds all of its rows until it ends; beyond this, requests are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "EXPLAIN_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Microseconds the oldest waiting request may be held for others to join its run; 0 merges
    /// only what is already waiting.
    #[arg(long, env = "EXPLAIN_MAX_QUEUE_DELAY_US", default_value_t = 0)]
    pub max_queue_delay_us: u64,
    /// Most rows in one engine run: waiting requests are merged up to this, and Integrated
    /// Gradients and SmoothGrad rows are split at it. Default: 8 on CPU (more rows cost memory
    /// without being faster per row), 64 with CUDA.
    #[arg(long, env = "EXPLAIN_MAX_BATCH_SIZE", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch_size: Option<u32>,
    /// Most graphs made on first use held in memory at once: Ablation-CAM runs a tail graph of
    /// the model per layer and DeepLift its own graph (for ResNet-18 a tail's session takes up to
    /// ~80 MiB, DeepLift's ~300 MiB: docs/reliability.md, docs/benchmarks.md). Making another drops
    /// the one run least recently; it is made again when next needed (0.12–0.20 s for ResNet-18).
    #[arg(long, env = "EXPLAIN_MAX_LAZY_GRAPHS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lazy_graphs: u32,
    /// Most engine rows one request may need (1 + IG steps + SmoothGrad samples + …). The
    /// default, the queue's default capacity, admits Score-CAM and Ablation-CAM at the 512-channel
    /// last block of a ResNet-18 with faithfulness scoring.
    #[arg(long, env = "EXPLAIN_MAX_ROWS_PER_REQUEST", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rows_per_request: u32,
    /// Folder caching gradient-augmented graphs by content hash. Default: $XDG_CACHE_HOME/explain,
    /// else $HOME/.cache/explain. An unwritable folder (read-only root) disables the cache.
    #[arg(long, env = "EXPLAIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache gradient-augmented graphs.
    #[arg(long, env = "EXPLAIN_NO_CACHE", value_parser = BoolishValueParser::new())]
    pub no_cache: bool,
    /// Largest encoded image accepted, in bytes.
    #[arg(long, env = "EXPLAIN_MAX_IMAGE_BYTES", default_value_t = ImageLimits::DEFAULT.max_bytes)]
    pub max_image_bytes: usize,
    /// Largest decoded image accepted, in pixels.
    #[arg(long, env = "EXPLAIN_MAX_IMAGE_PIXELS", default_value_t = ImageLimits::DEFAULT.max_pixels)]
    pub max_image_pixels: u64,
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "EXPLAIN_MAX_REQUEST_BYTES", default_value_t = 32 << 20)]
    pub max_request_bytes: usize,
    /// Largest tensor chunk sent, in bytes (at most 1 MiB).
    #[arg(long, env = "EXPLAIN_MAX_CHUNK_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1..=(1 << 20)))]
    pub max_chunk_bytes: u32,
    /// Requests of one ExplainStream call worked on at once; the next is read when one finishes.
    #[arg(long, env = "EXPLAIN_STREAM_IN_FLIGHT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub stream_in_flight: u32,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "EXPLAIN_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 keepalive pings.
    #[arg(long, env = "EXPLAIN_KEEPALIVE_INTERVAL_SECS", default_value_t = 30)]
    pub keepalive_interval_secs: u64,
    /// Seconds a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "EXPLAIN_KEEPALIVE_TIMEOUT_SECS", default_value_t = 10)]
    pub keepalive_timeout_secs: u64,
    /// HTTP/2 flow-control window of each stream, in bytes: how much of a request a caller may
    /// send before the server acknowledges it.
    #[arg(long, env = "EXPLAIN_HTTP2_STREAM_WINDOW_BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 flow-control window of each connection, in bytes.
    #[arg(long, env = "EXPLAIN_HTTP2_CONNECTION_WINDOW_BYTES", default_value_t = 16 << 20,
          value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    pub http2_connection_window_bytes: u32,
    /// Largest HTTP/2 frame the server accepts, in bytes (16 KiB to 16 MiB).
    #[arg(long, env = "EXPLAIN_HTTP2_MAX_FRAME_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(16_384..=16_777_215))]
    pub http2_max_frame_bytes: u32,
    /// PEM certificate chain: serve TLS with it (needs --tls-key). Reloaded when it changes.
    #[arg(long, env = "EXPLAIN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. Reloaded when it changes.
    #[arg(long, env = "EXPLAIN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates that chain to one (mutual TLS). Needs
    /// --tls-cert. Reloaded when it changes.
    #[arg(long, env = "EXPLAIN_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line (`#` comments): every call must send
    /// `authorization: Bearer <token>`, else UNAUTHENTICATED. Reloaded when it changes.
    #[arg(long, env = "EXPLAIN_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// With --auth-tokens-file: let `grpc.health.v1.Health` be called without a token (probes).
    #[arg(long, env = "EXPLAIN_AUTH_OPEN_HEALTH", value_parser = BoolishValueParser::new())]
    pub auth_open_health: bool,
    /// With --auth-tokens-file: let server reflection be called without a token (grpcurl).
    #[arg(long, env = "EXPLAIN_AUTH_OPEN_REFLECTION", value_parser = BoolishValueParser::new())]
    pub auth_open_reflection: bool,
    /// Seconds between checks of the TLS and token files for changes.
    #[arg(long, env = "EXPLAIN_RELOAD_INTERVAL_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reload_interval_secs: u64,
    /// Seconds new calls are still taken after SIGTERM/SIGINT, with health already NOT_SERVING,
    /// so that load balancers (Kubernetes endpoints) stop sending first.
    #[arg(long, env = "EXPLAIN_DRAIN_DELAY_SECS", default_value_t = 0)]
    pub drain_delay_secs: u64,
    /// Seconds open calls get to finish after the drain delay, once new connections are refused.
    #[arg(long, env = "EXPLAIN_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// Three numbers, one per RGB channel.
pub type Triple = [f32; 3];

fn parse_triple(text: &str) -> Result<Triple, String> {
    let values: Vec<f32> = text
        .split(',')
        .map(|part| part.trim().parse::<f32>().map_err(|e| format!("`{part}`: {e}")))
        .collect::<Result<_, _>>()?;
    values.try_into().map_err(|values: Vec<f32>| format!("expected 3 comma-separated numbers, got {}", values.len()))
}

impl ServeConfig {
    /// The graph cache folder, if caching is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
            Some(base.join("explain"))
        })
    }

    /// The server's options.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            load: LoadOptions {
                model: self.model.clone().map_or(ModelSource::Embedded, ModelSource::File),
                labels: self.labels.clone(),
                input_size: self.input_size,
                resize_size: self.resize_size,
                mean: self.mean,
                std: self.std,
                ort: OrtOptions {
                    library: ort_library(self.ort_library.as_ref()),
                    execution_provider: self.execution_provider,
                    require_cuda: self.require_cuda,
                    intra_op_threads: self.intra_op_threads,
                    intra_op_spinning: self.intra_op_spinning,
                    allow_tf32: self.allow_tf32,
                },
                queue_capacity: self.queue_capacity,
                max_batch_size: self.max_batch_size.map(|rows| rows as usize),
                max_queue_delay: Duration::from_micros(self.max_queue_delay_us),
                max_lazy_graphs: self.max_lazy_graphs as usize,
                cache_dir: self.cache_dir(),
                limits: Limits {
                    image: ImageLimits { max_bytes: self.max_image_bytes, max_pixels: self.max_image_pixels },
                    max_rows_per_request: self.max_rows_per_request as usize,
                },
                require_gradients: self.require_gradients,
                compute_threads: self.compute_threads,
            },
            max_chunk_bytes: self.max_chunk_bytes as usize,
            stream_in_flight: self.stream_in_flight as usize,
            max_request_bytes: self.max_request_bytes,
            http2: Http2Settings {
                max_concurrent_streams: self.max_concurrent_streams,
                keepalive_interval: Duration::from_secs(self.keepalive_interval_secs),
                keepalive_timeout: Duration::from_secs(self.keepalive_timeout_secs),
                stream_window: self.http2_stream_window_bytes,
                connection_window: self.http2_connection_window_bytes,
                max_frame_size: self.http2_max_frame_bytes,
            },
            tls: self.tls_cert.clone().zip(self.tls_key.clone()).map(|(certificate, key)| TlsFiles {
                certificate,
                key,
                client_ca: self.tls_client_ca.clone(),
            }),
            auth_tokens: self.auth_tokens_file.clone(),
            open_services: OpenServices { health: self.auth_open_health, reflection: self.auth_open_reflection },
            reload_interval: Duration::from_secs(self.reload_interval_secs),
            drain_delay: Duration::from_secs(self.drain_delay_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

/// The settings of `explaind serve` with no flags (`EXPLAIN_*` environment variables still apply).
pub fn default_serve_config() -> ServeConfig {
    match Cli::parse_from(["explaind", "serve"]).command {
        Command::Serve(config) => *config,
        Command::Augment(_) | Command::Randomise(_) => unreachable!("`serve` parses as Serve"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::preprocess::{IMAGENET_MEAN, IMAGENET_STD};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_serve_the_embedded_model_with_imagenet_normalisation() {
        let options = default_serve_config().serve_options();
        assert_eq!(options.load.model, ModelSource::Embedded);
        assert_eq!(options.load.mean, IMAGENET_MEAN);
        assert_eq!(options.load.std, IMAGENET_STD);
        assert_eq!(options.max_chunk_bytes, 1 << 20);
    }

    #[test]
    fn the_readme_documents_every_flag_and_variable() {
        let readme = include_str!("../../README.md");
        let command = Cli::command();
        let serve = command.find_subcommand("serve").expect("serve subcommand");
        for argument in serve.get_arguments().filter(|a| a.get_long().is_some_and(|l| l != "help")) {
            let flag = format!("`--{}`", argument.get_long().unwrap_or_default());
            assert!(readme.contains(&flag), "README's configuration table lacks {flag}");
            let env = argument.get_env().map(|env| format!("`{}`", env.to_string_lossy()));
            assert!(env.is_some_and(|env| readme.contains(&env)), "{flag} needs an EXPLAIN_* variable in the README");
        }
    }

    #[test]
    fn spinning_is_on_unless_switched_off() {
        let spinning = |args: &[&str]| match Cli::parse_from(args).command {
            Command::Serve(config) => config.serve_options().load.ort.intra_op_spinning,
            Command::Augment(_) | Command::Randomise(_) => unreachable!("`serve` parses as Serve"),
        };
        assert!(spinning(&["explaind", "serve"]));
        assert!(!spinning(&["explaind", "serve", "--intra-op-spinning", "false"]));
        assert!(spinning(&["explaind", "serve", "--intra-op-spinning", "1"]));
    }

    #[test]
    fn triples_need_three_numbers() {
        assert_eq!(parse_triple("0.5, 0.25,1"), Ok([0.5, 0.25, 1.0]));
        assert!(parse_triple("1,2").is_err());
        assert!(parse_triple("a,b,c").is_err());
    }
}
