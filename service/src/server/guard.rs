//! What every call passes before it reaches a handler: authentication (when tokens are
//! configured) and its deadline. A call whose `grpc-timeout` passes is answered
//! DEADLINE_EXCEEDED at that moment, and its handler is dropped — with it the engine work it
//! queued, which leaves the queue unrun.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use tonic::{Status, body::Body};
use tower_service::Service;

use super::{
    access::{OpenServices, Tokens},
    deadline::{self, Deadline},
    reload::Reloading,
};

/// Who may call.
#[derive(Clone, Debug, Default)]
pub(super) struct Access {
    /// Accepted bearer tokens; `None` lets every caller in.
    pub(super) tokens: Option<Arc<Reloading<Tokens>>>,
    /// Services callable without a token.
    pub(super) open: OpenServices,
}

impl Access {
    fn check<B>(&self, request: &http::Request<B>) -> Result<(), Status> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        if self.open.allows(request.uri().path()) {
            return Ok(());
        }
        tokens.get().check(request.headers().get(http::header::AUTHORIZATION))
    }
}

/// The guard around the routes.
#[derive(Clone, Debug)]
pub(super) struct Guard<S> {
    inner: S,
    access: Access,
}

impl<S> Guard<S> {
    /// Guards `inner` with `access`.
    pub(super) fn new(inner: S, access: Access) -> Self {
        Self { inner, access }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let received = Instant::now();
        if let Err(status) = self.access.check(&request) {
            tracing::debug!(path = request.uri().path(), code = ?status.code(), "call refused");
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let deadline = deadline::deadline(request.headers(), received);
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(Deadline(deadline));
        }
        // The clone that was made ready serves this call; the fresh clone waits for the next.
        let fresh = self.inner.clone();
        let call = std::mem::replace(&mut self.inner, fresh).call(request);
        Box::pin(async move {
            let Some(deadline) = deadline else { return call.await };
            match tokio::time::timeout_at(deadline.into(), call).await {
                Ok(response) => response,
                Err(_) => Ok(Status::deadline_exceeded("the deadline passed before the call completed").into_http()),
            }
        })
    }
}
