//! Logging with `tracing`: human-readable or JSON lines on stderr, filtered by `EXPLAIN_LOG`; and,
//! when a collector is configured, the service's spans (`info` and above, whatever the log filter)
//! exported as OpenTelemetry traces over OTLP/gRPC (a batch exporter; flushed by
//! [`Telemetry::shutdown`]).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::config::{LogConfig, LogFormat};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid --log-filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {endpoint}: {reason}")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// What was installed; keep it until the process ends, then [`Telemetry::shutdown`].
#[derive(Debug)]
#[must_use = "the trace exporter flushes only on shutdown"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter, if there is one (blocking: off the async runtime).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("explaind: flushing traces failed: {error}");
        }
    }
}

/// Installs the global subscriber (and the OTLP exporter when `config.otlp_endpoint` is set; it
/// needs a tokio runtime). A second installation (tests) leaves the first subscriber in place.
pub fn init(config: &LogConfig) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_filter)?;
    let provider = config.otlp_endpoint.as_deref().map(tracer_provider).transpose()?;
    let registry = tracing_subscriber::registry();
    // Without an exporter the log filter is global, so that disabled spans and events (h2's and
    // hyper's per-frame ones) are never built. With one, traces have a filter of their own: the
    // service's spans, whatever the log filter lets through.
    let _ = match &provider {
        None => registry.with(filter).with(lines(config.log_format)).try_init(),
        Some(provider) => {
            let traces = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("explaind"))
                .with_filter(Targets::new().with_target("explain_service", Level::INFO));
            registry.with(lines(config.log_format).with_filter(filter)).with(traces).try_init()
        }
    };
    Ok(Telemetry { provider })
}

/// The log lines layer, over any subscriber that keeps spans.
fn lines<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let lines = fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines.boxed(),
        // Each line carries the span it was logged in (a call's RPC and request id, its timings).
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed(),
    }
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| TelemetryError::Otlp { endpoint: endpoint.to_owned(), reason: error.to_string() })?;
    let resource = Resource::builder().with_service_name("explaind").build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}
