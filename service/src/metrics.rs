//! Prometheus metrics, every one named `explain_*`, kept with the `prometheus-client` crate and
//! exposed in the Prometheus text format (0.0.4) on a listener of their own (`--metrics-listen`):
//! calls by RPC and gRPC status code with their latency, the engine's admitted and queued rows, the
//! rows and run time of every engine run by graph, rows by method, admission refusals, and what is
//! served (version, model, execution provider). Cheap to clone; clones count into the same series.

mod endpoint;

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

pub use self::endpoint::{MetricsEndpoint, MetricsError};

/// Upper bounds, in seconds, of the call latency buckets: from a prediction on a small model to
/// a long Integrated Gradients request.
const CALL_SECONDS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];
/// Upper bounds, in seconds, of the engine run time buckets.
const RUN_SECONDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the rows-per-run buckets.
const BATCH_ROWS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The RPCs counted under their own name; any other path is counted as `other`, so that callers
/// cannot grow the number of series by calling made-up methods.
const RPCS: [&str; 8] = [
    "explain.v1.ExplainService/GetModelInfo",
    "explain.v1.ExplainService/Classify",
    "explain.v1.ExplainService/Explain",
    "explain.v1.ExplainService/ExplainStream",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Histograms by label set, each made with its family's buckets.
type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    rpc: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    graph: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServedLabels {
    version: &'static str,
    model: String,
    model_sha256: String,
    execution_provider: String,
}

/// Every metric of one server, and the registry that encodes them.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: CallMetrics,
    engine: EngineMetrics,
    rows: Family<MethodLabels, Counter>,
    served: Family<ServedLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("explain");
        let calls = CallMetrics::register(&mut registry);
        let engine = EngineMetrics::register(&mut registry);
        let rows = Family::<MethodLabels, Counter>::default();
        registry.register(
            "rows",
            "Engine rows admitted, by the method that needs them (`image`: each request's own row)",
            rows.clone(),
        );
        let served = Family::<ServedLabels, Gauge>::default();
        registry.register(
            "served",
            "What this server serves: 1 for the loaded model, with its details",
            served.clone(),
        );
        Self { registry: Arc::new(registry), calls, engine, rows, served }
    }

    /// The metrics of calls, for the layer that sees every call.
    pub fn calls(&self) -> &CallMetrics {
        &self.calls
    }

    /// The metrics of the engine, for the engine thread and its admission.
    pub fn engine(&self) -> &EngineMetrics {
        &self.engine
    }

    /// Counts `rows` engine rows admitted for `method`.
    pub fn add_rows(&self, method: &'static str, rows: usize) {
        self.rows.get_or_create(&MethodLabels { method }).inc_by(rows as u64);
    }

    /// Records the model being served (once it has loaded).
    pub fn set_served(&self, model: &str, model_sha256: &str, execution_provider: &str) {
        let labels = ServedLabels {
            version: env!("CARGO_PKG_VERSION"),
            model: model.to_owned(),
            model_sha256: model_sha256.to_owned(),
            execution_provider: execution_provider.to_owned(),
        };
        self.served.get_or_create(&labels).set(1);
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Calls by RPC and status code, and their latency.
#[derive(Clone, Debug)]
pub struct CallMetrics {
    calls: Family<CallLabels, Counter>,
    seconds: Histograms<RpcLabels>,
}

impl CallMetrics {
    fn register(registry: &mut Registry) -> Self {
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("calls", "Calls answered, by RPC and gRPC status code", calls.clone());
        let seconds: Histograms<RpcLabels> = Family::new_with_constructor(|| Histogram::new(CALL_SECONDS));
        registry.register(
            "call_seconds",
            "Time from a call's arrival to its status (the end of its response stream), by RPC",
            seconds.clone(),
        );
        Self { calls, seconds }
    }

    /// The label under which calls to `path` (`/package.Service/Method`) are counted.
    pub fn rpc(path: &str) -> &'static str {
        let method = path.strip_prefix('/').unwrap_or(path);
        RPCS.iter().find(|&&known| known == method).copied().unwrap_or("other")
    }

    /// Counts one call to `rpc` (from [`Self::rpc`]) answered with `code` after `elapsed`.
    pub fn record(&self, rpc: &'static str, code: tonic::Code, elapsed: Duration) {
        self.calls.get_or_create(&CallLabels { rpc, code: code_name(code) }).inc();
        self.seconds.get_or_create(&RpcLabels { rpc }).observe(elapsed.as_secs_f64());
    }
}

/// The engine's queue and runs. The default is a set counted nowhere (for an engine without a
/// server, as in tests).
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    admitted_rows: Gauge,
    queued_rows: Gauge,
    refusals: Counter,
    batch_rows: Histograms<GraphLabels>,
    run_seconds: Histograms<GraphLabels>,
    lazy_sessions_made: Family<GraphLabels, Counter>,
    lazy_sessions: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            admitted_rows: Gauge::default(),
            queued_rows: Gauge::default(),
            refusals: Counter::default(),
            batch_rows: Family::new_with_constructor(|| Histogram::new(BATCH_ROWS)),
            run_seconds: Family::new_with_constructor(|| Histogram::new(RUN_SECONDS)),
            lazy_sessions_made: Family::default(),
            lazy_sessions: Gauge::default(),
        }
    }
}

impl EngineMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "engine_admitted_rows",
            "Rows held by admitted requests, from admission until they finish",
            metrics.admitted_rows.clone(),
        );
        registry.register(
            "engine_queued_rows",
            "Rows sent to the engine and not yet answered (waiting, or in the current run)",
            metrics.queued_rows.clone(),
        );
        registry.register(
            "engine_refusals",
            "Requests refused at admission because the engine's row capacity was taken (RESOURCE_EXHAUSTED)",
            metrics.refusals.clone(),
        );
        registry.register("engine_batch_rows", "Rows of each engine run, by graph", metrics.batch_rows.clone());
        registry.register("engine_run_seconds", "Time of each engine run, by graph", metrics.run_seconds.clone());
        registry.register(
            "engine_lazy_sessions_made",
            "Sessions made on first use (tail, deep_lift), by graph; one made again after it was dropped counts again",
            metrics.lazy_sessions_made.clone(),
        );
        registry.register(
            "engine_lazy_sessions",
            "Sessions made on first use held now (at most --max-lazy-graphs)",
            metrics.lazy_sessions.clone(),
        );
        metrics
    }

    /// The gauge of rows held by admitted requests; the engine's admission counts in it
    /// directly (a clone shares the count), so the metric cannot drift from what admission sees.
    pub fn admitted_rows(&self) -> Gauge {
        self.admitted_rows.clone()
    }

    /// Rows sent to the engine (positive) or answered (negative).
    pub fn queued(&self, rows: i64) {
        self.queued_rows.inc_by(rows);
    }

    /// One request refused at admission.
    pub fn refused(&self) {
        self.refusals.inc();
    }

    /// A session of `graph` made on first use.
    pub fn lazy_session_made(&self, graph: &'static str) {
        self.lazy_sessions_made.get_or_create(&GraphLabels { graph }).inc();
    }

    /// How many sessions made on first use are held now.
    pub fn lazy_sessions_held(&self, held: usize) {
        self.lazy_sessions.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// One engine run of `rows` rows on `graph`, taking `elapsed`.
    pub fn ran(&self, graph: &'static str, rows: usize, elapsed: Duration) {
        self.batch_rows.get_or_create(&GraphLabels { graph }).observe(rows as f64);
        self.run_seconds.get_or_create(&GraphLabels { graph }).observe(elapsed.as_secs_f64());
    }
}

/// The canonical name of a gRPC status code, as in grpc's `StatusCode` and grpcurl's output.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_explain_rpc_has_its_own_label_and_unknown_paths_share_one() {
        let descriptors =
            <prost_types::FileDescriptorSet as prost::Message>::decode(explain_proto::FILE_DESCRIPTOR_SET)
                .expect("descriptor set");
        let file = descriptors.file.iter().find(|file| file.package() == "explain.v1").expect("explain.v1");
        let service = &file.service[0];
        for method in &service.method {
            let path = format!("/explain.v1.{}/{}", service.name(), method.name());
            assert_eq!(CallMetrics::rpc(&path), &path[1..], "{path} is counted as other");
        }
        assert_eq!(CallMetrics::rpc("/explain.v1.ExplainService/Made-up"), "other");
        assert_eq!(CallMetrics::rpc("/grpc.health.v1.Health/Check"), "grpc.health.v1.Health/Check");
    }

    #[test]
    fn the_exposition_names_every_family_with_the_prefix() {
        let metrics = Metrics::new();
        metrics.calls().record("explain.v1.ExplainService/Classify", tonic::Code::ResourceExhausted, Duration::ZERO);
        metrics.engine().ran("forward", 3, Duration::from_millis(2));
        metrics.add_rows("integrated_gradients", 32);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"explain_calls_total{rpc="explain.v1.ExplainService/Classify",code="RESOURCE_EXHAUSTED"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"explain_engine_batch_rows_bucket{graph="forward",le="4"} 1"#), "{text}");
        assert!(text.contains(r#"explain_rows_total{method="integrated_gradients"} 32"#), "{text}");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("explain_"), "{line}");
        }
    }
}
