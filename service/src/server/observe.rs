//! The outermost layer: every call runs in a `call` span (its RPC, the caller's `x-request-id`,
//! and once known its status code, total time and the server's timings, which the handlers record
//! with [`record_summary`]), is counted by RPC and gRPC status code with the time from its arrival
//! to its status, and is logged at `debug` when it ends. The status is read where gRPC puts it: in
//! the response headers of a trailers-only answer (refusals, errors before any message), else in
//! the trailers after the last message; a response stream dropped before its trailers (the caller
//! went away) is counted as CANCELLED.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use bytes::Bytes;
use explain_proto::v1 as pb;
use http_body::Frame;
use tonic::{Code, Status, body::Body};
use tower_service::Service;
use tracing::{Instrument, Span, field::Empty};

use crate::metrics::CallMetrics;

/// Counts the calls of the service it wraps.
#[derive(Clone, Debug)]
pub(super) struct Observed<S> {
    inner: S,
    metrics: CallMetrics,
}

impl<S> Observed<S> {
    /// Counts the calls of `inner` in `metrics`.
    pub(super) fn new(inner: S, metrics: CallMetrics) -> Self {
        Self { inner, metrics }
    }
}

impl<S, B> Service<http::Request<B>> for Observed<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = CallMetrics::rpc(request.uri().path());
        let span = tracing::info_span!(
            "call",
            rpc,
            request_id = request_id(request.headers()),
            code = Empty,
            elapsed_ms = Empty,
            preprocess_ms = Empty,
            queue_ms = Empty,
            inference_ms = Empty,
            rows = Empty,
            batch_size = Empty,
        );
        let call = Call { rpc, received: Instant::now(), metrics: Some(self.metrics.clone()), span: span.clone() };
        let answer = span.in_scope(|| self.inner.call(request)).instrument(span);
        Box::pin(async move {
            let response = answer.await?;
            if let Some(code) = status_code(response.headers()) {
                call.end(code);
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            Ok(http::Response::from_parts(parts, Body::new(ObservedBody { inner: body, call: Some(call) })))
        })
    }
}

/// One call not yet counted. Counted once: when its status is seen, or as CANCELLED if it is
/// dropped before.
struct Call {
    rpc: &'static str,
    received: Instant,
    metrics: Option<CallMetrics>,
    span: Span,
}

impl Call {
    fn end(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if let Some(metrics) = self.metrics.take() {
            let elapsed = self.received.elapsed();
            metrics.record(self.rpc, code, elapsed);
            let elapsed_ms = elapsed.as_secs_f64() * 1e3;
            self.span.record("code", tracing::field::debug(code)).record("elapsed_ms", elapsed_ms);
            self.span.in_scope(|| tracing::debug!(?code, elapsed_ms, "call ended"));
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// A response body that counts its call when the trailers pass (or the body fails or ends).
struct ObservedBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(|trailers| status_code(trailers).unwrap_or(Code::Unknown)),
            Some(Err(status)) => Some(status.code()),
            // gRPC always ends with trailers; a body that ends without them left its status unsaid.
            None => Some(Code::Unknown),
        };
        if let Some(code) = code
            && let Some(call) = self.call.take()
        {
            call.end(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records the server's timings of an answer on the current span (the call's, or a stream
/// request's).
pub(super) fn record_summary(summary: &pb::Summary) {
    let span = Span::current();
    if let Some(timings) = &summary.timings {
        span.record("preprocess_ms", timings.preprocess_ms)
            .record("queue_ms", timings.queue_ms)
            .record("inference_ms", timings.inference_ms);
    }
    span.record("rows", summary.rows).record("batch_size", summary.batch_size);
}

/// The caller's `x-request-id`, when it is short printable ASCII; else empty.
fn request_id(headers: &http::HeaderMap) -> &str {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| id.len() <= 128 && id.bytes().all(|byte| byte.is_ascii_graphic()))
        .unwrap_or("")
}

/// The `grpc-status` in `headers`, if there is one.
fn status_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    let code = value.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_headers_and_an_absent_one_is_none() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        assert_eq!(status_code(&headers), Some(Code::ResourceExhausted));
    }

    #[test]
    fn only_short_printable_request_ids_are_taken() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(request_id(&headers), "");
        headers.insert("x-request-id", http::HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert("x-request-id", http::HeaderValue::from_str(&"x".repeat(129)).expect("header"));
        assert_eq!(request_id(&headers), "");
        headers.insert("x-request-id", http::HeaderValue::from_static("with space"));
        assert_eq!(request_id(&headers), "");
    }
}
