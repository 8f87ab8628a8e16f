//! Retries: UNAVAILABLE and RESOURCE_EXHAUSTED are retried with exponential backoff and full
//! jitter, waiting at least what the server asks for (`grpc-retry-pushback-ms`, else
//! `google.rpc.RetryInfo`); a negative pushback means "do not retry". So is a call whose
//! connection broke under it (tonic's UNKNOWN "transport error": a server killed mid-call; or
//! CANCELLED "operation was canceled": queued on a connection that closed before it was sent),
//! which is safe because every explain.v1 RPC only reads. Nothing else is retried — least of all
//! INVALID_ARGUMENT, which would fail the same way again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// How calls are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Growth of the backoff per attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff 50 ms × 2ⁿ up to 2 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// How long to wait before attempt `attempt` + 1 after `status` failed attempt `attempt`
    /// (1-based), or `None` when the call must not be retried.
    pub fn delay(&self, attempt: u32, status: &Status) -> Option<Duration> {
        if attempt >= self.max_attempts || !retryable(status) {
            return None;
        }
        let asked = match pushback(status) {
            Some(Pushback::Stop) => return None,
            Some(Pushback::After(delay)) => delay,
            None => Duration::ZERO,
        };
        let exponent = self.multiplier.powi(attempt.saturating_sub(1) as i32);
        let ceiling = self.initial_backoff.mul_f64(exponent).min(self.max_backoff);
        Some(asked.max(ceiling.mul_f64(jitter())))
    }
}

/// Whether a call that failed with `status` may be tried again.
fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted => true,
        // tonic's UNKNOWN "transport error" (the connection broke mid-call) and hyper's CANCELLED
        // "operation was canceled" (queued on a connection that closed before it was sent).
        Code::Unknown | Code::Cancelled => connection_broke(status),
        Code::Ok
        | Code::InvalidArgument
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => false,
    }
}

/// Whether `status` is the client's own report of a broken connection rather than a server's
/// answer: tonic's transport error in the status's source chain. A call that ran out of its own
/// deadline (tonic's CANCELLED "Timeout expired", with the same transport error around it) is not.
fn connection_broke(status: &Status) -> bool {
    let mut chain = std::iter::successors(std::error::Error::source(status), |error| error.source());
    let mut transport = false;
    chain.all(|error| {
        transport |= error.is::<tonic::transport::Error>();
        !error.is::<tonic::TimeoutExpired>()
    }) && transport
}

/// What the server said about retrying.
enum Pushback {
    /// Retry after this long.
    After(Duration),
    /// Do not retry.
    Stop,
}

/// The server's retry advice: the `grpc-retry-pushback-ms` trailer (gRPC's own retry policy
/// honours it), else `google.rpc.RetryInfo`.
fn pushback(status: &Status) -> Option<Pushback> {
    if let Some(value) = status.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()) {
        return match value.trim().parse::<i64>() {
            Ok(ms) if ms >= 0 => Some(Pushback::After(Duration::from_millis(ms as u64))),
            Ok(_) => Some(Pushback::Stop),
            Err(_) => None,
        };
    }
    status.get_error_details().retry_info().and_then(|info| info.retry_delay).map(Pushback::After)
}

/// A uniform number in [0, 1), different per call (full jitter spreads retries of many clients).
fn jitter() -> f64 {
    use std::{
        hash::{BuildHasher, Hasher},
        sync::atomic::{AtomicU64, Ordering},
    };
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn only_unavailable_and_resource_exhausted_are_retried() {
        let policy = RetryPolicy::default();
        for code in [Code::InvalidArgument, Code::FailedPrecondition, Code::Internal, Code::DeadlineExceeded] {
            assert_eq!(policy.delay(1, &Status::new(code, "no")), None, "{code:?}");
        }
        assert!(policy.delay(1, &Status::unavailable("down")).is_some());
        assert!(policy.delay(3, &Status::resource_exhausted("full")).is_some());
        assert_eq!(policy.delay(4, &Status::unavailable("down")), None, "attempts are bounded");
        assert_eq!(RetryPolicy::none().delay(1, &Status::unavailable("down")), None);
        assert_eq!(policy.delay(1, &Status::unknown("a server's own UNKNOWN")), None);
        assert_eq!(policy.delay(1, &Status::cancelled("a server's own CANCELLED")), None);
    }

    #[test]
    fn backoff_grows_with_full_jitter_under_a_ceiling() {
        let policy = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
        for attempt in 1..10 {
            let delay = policy.delay(attempt, &Status::unavailable("down")).expect("retried");
            let ceiling = (policy.initial_backoff.mul_f64(2f64.powi(attempt as i32 - 1))).min(policy.max_backoff);
            assert!(delay <= ceiling, "attempt {attempt}: {delay:?} > {ceiling:?}");
        }
    }

    #[test]
    fn the_servers_pushback_is_a_floor_and_a_negative_one_stops() {
        let policy = RetryPolicy::default();
        let mut status = Status::resource_exhausted("full");
        status.metadata_mut().insert("grpc-retry-pushback-ms", MetadataValue::from(300_u64));
        assert!(policy.delay(1, &status).expect("retried") >= Duration::from_millis(300));
        status.metadata_mut().insert("grpc-retry-pushback-ms", MetadataValue::from(-1_i64));
        assert_eq!(policy.delay(1, &status), None);
        let with_info = Status::with_error_details(
            Code::ResourceExhausted,
            "full",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(700))),
        );
        assert!(policy.delay(1, &with_info).expect("retried") >= Duration::from_millis(700));
    }
}
