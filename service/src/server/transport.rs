//! Connections: accepts TCP with `TCP_NODELAY` on every socket (without it Nagle's algorithm and
//! delayed ACKs add ~30 ms to every call), completes the TLS handshake off the accept loop when
//! TLS is on, and serves HTTP/2 with hyper under explicit settings. On shutdown the listener
//! closes (new connections are refused), open connections get GOAWAY and a grace period for
//! their calls.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tonic::body::Body;
use tower_service::Service;

use super::reload::Reloading;

/// HTTP/2 settings of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2Settings {
    /// Concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Interval of keepalive pings.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection closes.
    pub keepalive_timeout: Duration,
    /// Flow-control window of each stream, in bytes (what a caller may send unacknowledged).
    pub stream_window: u32,
    /// Flow-control window of a connection, in bytes.
    pub connection_window: u32,
    /// Largest frame the server accepts, in bytes (16 KiB – 16 MiB).
    pub max_frame_size: u32,
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on `listener` until `shutdown` resolves, then drains open calls for at most
/// `grace`. With `tls`, connections are TLS (its current configuration, per handshake).
pub(super) async fn serve<S>(
    listener: TcpListener,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    service: S,
    settings: Http2Settings,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let (http2, service, watcher, tls) = (http2.clone(), service.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let result = match tls {
                None => watcher.watch(connection(&http2, socket, service)).await,
                Some(config) => match handshake(socket, config.get()).await {
                    Ok(stream) => watcher.watch(connection(&http2, stream, service)).await,
                    Err(error) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "listener closed; draining open connections");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "grace period over; open calls cut");
    }
}

async fn handshake(
    socket: TcpStream,
    config: Arc<ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(socket))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

fn connection<I, S>(
    http2: &hyper::server::conn::http2::Builder<TokioExecutor>,
    io: I,
    service: S,
) -> hyper::server::conn::http2::Connection<TokioIo<I>, TowerToHyperService<S>, TokioExecutor>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    http2.serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
}
