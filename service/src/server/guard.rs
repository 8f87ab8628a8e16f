//! What every call passes before it reaches a handler: authentication (when tokens are
//! configured) and its deadline. A call whose `grpc-timeout` passes is answered
//! DEADLINE_EXCEEDED at that moment, and its handler is dropped — with it the engine work it
//! queued, which leaves the queue unrun. A handler that panics is answered INTERNAL; the
//! connection and its other calls go on.

use std::{
    convert::Infallible,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
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
        let call = CatchPanic(Box::pin(call));
        Box::pin(async move {
            let answered = match deadline {
                None => call.await,
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), call).await {
                    Ok(answered) => answered,
                    Err(_) => {
                        return Ok(
                            Status::deadline_exceeded("the deadline passed before the call completed").into_http()
                        );
                    }
                },
            };
            answered.unwrap_or_else(|()| {
                tracing::error!("a handler panicked; answered INTERNAL");
                Ok(Status::internal("the server failed while handling the call; see its log").into_http())
            })
        })
    }
}

/// A future that reports a panic while polling as `Err(())` instead of unwinding.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose calls to `/panic` panic and whose other calls answer OK.
    #[derive(Clone)]
    struct Fragile;

    impl Service<http::Request<()>> for Fragile {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            Box::pin(async move {
                tokio::task::yield_now().await;
                assert!(request.uri().path() != "/panic", "a bug in a handler");
                Ok(http::Response::new(Body::empty()))
            })
        }
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status").and_then(|value| value.to_str().ok())
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_internal_and_the_guard_goes_on() {
        let mut guard = Guard::new(Fragile, Access::default());
        let panicked = guard.call(http::Request::get("/panic").body(()).expect("request")).await.expect("infallible");
        assert_eq!(grpc_status(&panicked), Some("13"), "INTERNAL");
        let fine = guard.call(http::Request::get("/fine").body(()).expect("request")).await.expect("infallible");
        assert_eq!(grpc_status(&fine), None, "served normally");
    }
}
