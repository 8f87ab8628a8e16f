//! The gRPC server: `explain.v1.ExplainService`, `grpc.health.v1.Health` and server reflection
//! (v1 and v1alpha, which grpcurl 1.8 speaks) on one listener, behind a guard that authenticates
//! callers (bearer tokens, when configured) and enforces deadlines; plain TCP or TLS / mutual TLS.
//! The model loads in the background while health answers NOT_SERVING and the API answers
//! UNAVAILABLE; on shutdown health turns NOT_SERVING for good, new calls are still taken for the
//! drain delay (while load balancers notice), then new connections are refused and open calls
//! drain within a grace period.

mod access;
mod deadline;
mod guard;
mod lifecycle;
mod observe;
mod reload;
mod service;
mod status;
mod stream;
mod tls;
mod transport;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use explain_proto::v1::explain_service_server::ExplainServiceServer;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::{codec::CompressionEncoding, service::RoutesBuilder};

use self::{
    access::Tokens,
    guard::{Access, Guard},
    lifecycle::Lifecycle,
    observe::Observed,
    service::{ApiSettings, ExplainApi, Readiness},
};
pub use self::{
    access::{OpenServices, TokensError},
    status::ApiError,
    tls::{TlsError, TlsFiles},
    transport::Http2Settings,
};
use crate::{
    explain::{Explainer, LoadOptions},
    metrics::{Metrics, MetricsEndpoint, MetricsError},
};

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address of the Prometheus endpoint (`/metrics`); none when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// The model and engine.
    pub load: LoadOptions,
    /// Largest tensor chunk sent, in bytes.
    pub max_chunk_bytes: usize,
    /// Requests of one `ExplainStream` worked on at once.
    pub stream_in_flight: usize,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// HTTP/2 settings of every connection.
    pub http2: Http2Settings,
    /// TLS (and mutual TLS) material; plain TCP when `None`.
    pub tls: Option<TlsFiles>,
    /// File of accepted bearer tokens; every caller is let in when `None`.
    pub auth_tokens: Option<PathBuf>,
    /// Services callable without a token when tokens are required.
    pub open_services: OpenServices,
    /// How often the TLS and token files are checked for changes.
    pub reload_interval: Duration,
    /// How long new calls are still taken after shutdown begins (health already NOT_SERVING),
    /// for load balancers to stop sending.
    pub drain_delay: Duration,
    /// How long open calls may take to finish after the listener closes.
    pub shutdown_grace: Duration,
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The model could not be loaded.
    #[error("cannot load the model: {0}")]
    Load(String),
    /// The TLS material cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The token file cannot be used.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The serving task failed.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// State of the model as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// Loading.
    Loading,
    /// Loaded; serving.
    Ready,
    /// Loading failed with this message.
    Failed(String),
}

/// A server running on a tokio task.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    load_state: watch::Receiver<LoadState>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Waits until the model has loaded and the API answers (Ok), or loading failed (Err with the
    /// reason).
    pub async fn ready(&mut self) -> Result<(), String> {
        let state = self
            .load_state
            .wait_for(|state| *state != LoadState::Loading)
            .await
            .map_err(|_| "the server stopped while loading".to_owned())?;
        match &*state {
            LoadState::Ready => Ok(()),
            LoadState::Failed(reason) => Err(reason.clone()),
            LoadState::Loading => unreachable!("waited for a state other than Loading"),
        }
    }

    /// Begins a graceful shutdown and waits for the server to stop.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.await?
    }

    /// Waits for the server to stop on its own (a load failure or a transport error).
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }

    /// Takes the trigger of the graceful shutdown, to fire it from elsewhere (a signal handler);
    /// `None` if it was taken already.
    pub fn take_shutdown_trigger(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Binds `options.listen`, starts serving at once (NOT_SERVING until the model loads) and loads
/// the model in the background. A load failure stops the server with [`ServeError::Load`].
pub async fn start(options: ServeOptions) -> Result<RunningServer, ServeError> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Bind { address: options.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { address: options.listen, source })?;
    let metrics = Metrics::new();
    let endpoint = match options.metrics_listen {
        Some(address) => Some(MetricsEndpoint::start(address, metrics.clone()).await?),
        None => None,
    };
    let metrics_addr = endpoint.as_ref().map(MetricsEndpoint::local_addr);
    let (shutdown, shutdown_signal) = tokio::sync::oneshot::channel::<()>();
    let (state_sender, load_state) = watch::channel(LoadState::Loading);
    let task = tokio::spawn(async move {
        // The endpoint lives as long as the server.
        let _endpoint = endpoint;
        serve(options, listener, metrics, state_sender, async {
            let _ = shutdown_signal.await;
        })
        .await
    });
    tracing::info!(%local_addr, "listening");
    Ok(RunningServer { local_addr, metrics_addr, shutdown: Some(shutdown), load_state, task })
}

async fn serve(
    options: ServeOptions,
    listener: TcpListener,
    metrics: Metrics,
    load_state: watch::Sender<LoadState>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let tls = options.tls.as_ref().map(|files| files.watch(options.reload_interval)).transpose()?;
    let tokens = options.auth_tokens.clone().map(|path| Tokens::watch(path, options.reload_interval)).transpose()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let lifecycle = Arc::new(Lifecycle::new(health).await);
    let readiness = Arc::new(Readiness::default());
    let loading =
        tokio::spawn(load(options.load.clone(), metrics.clone(), readiness.clone(), lifecycle.clone(), load_state));

    let settings = ApiSettings { max_chunk_bytes: options.max_chunk_bytes, stream_in_flight: options.stream_in_flight };
    let api = ExplainServiceServer::new(ExplainApi::new(readiness, settings))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(options.max_request_bytes)
        .max_encoding_message_size(options.max_chunk_bytes.saturating_add(64 * 1024).max(4 << 20));
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Load(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Load(format!("reflection: {e}")))?;
    let mut routes = RoutesBuilder::default();
    routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha).add_service(api);
    let service = Observed::new(
        Guard::new(routes.routes(), Access { tokens, open: options.open_services }),
        metrics.calls().clone(),
    );

    let drain_delay = options.drain_delay;
    let signal = async move {
        shutdown.await;
        tracing::info!(?drain_delay, "shutting down: health NOT_SERVING; new calls taken for the drain delay");
        lifecycle.stopped().await;
        tokio::time::sleep(drain_delay).await;
    };
    let server = transport::serve(listener, tls, service, options.http2, signal, options.shutdown_grace);
    tokio::pin!(server);
    tokio::pin!(loading);
    let mut loaded = false;
    loop {
        tokio::select! {
            () = &mut server => return Ok(()),
            outcome = &mut loading, if !loaded => {
                loaded = true;
                if let Err(reason) = outcome? {
                    return Err(ServeError::Load(reason));
                }
            }
        }
    }
}

/// Reflection over the explain and health APIs, the error details they send, and itself.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(explain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc error details (BadRequest, RetryInfo), so that grpcurl can print them.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Loads the model off the async runtime, makes it available to the handlers, and only then
/// publishes SERVING (unless shutdown has begun meanwhile).
async fn load(
    options: LoadOptions,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    lifecycle: Arc<Lifecycle>,
    state: watch::Sender<LoadState>,
) -> Result<(), String> {
    let engine_metrics = metrics.clone();
    let outcome = tokio::task::spawn_blocking(move || Explainer::load(&options, &engine_metrics))
        .await
        .map_err(|e| format!("loading task failed: {e}"))
        .and_then(|result| result.map_err(|e| e.to_string()));
    let result = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
    if let Ok(explainer) = &outcome {
        let info = explainer.info();
        tracing::info!(
            model = %info.name, layers = info.layers.len(), classes = info.num_classes,
            execution_provider = %info.execution_provider, "model loaded"
        );
        metrics.set_served(&info.name, &info.sha256, &info.execution_provider);
    }
    readiness.set(outcome);
    match &result {
        Ok(()) => {
            if lifecycle.serving().await {
                tracing::info!("serving");
            } else {
                tracing::info!("the model loaded after shutdown began; health stays NOT_SERVING");
            }
            let _ = state.send(LoadState::Ready);
        }
        Err(reason) => {
            tracing::error!(%reason, "model failed to load");
            lifecycle.stopped().await;
            let _ = state.send(LoadState::Failed(reason.clone()));
        }
    }
    result
}
