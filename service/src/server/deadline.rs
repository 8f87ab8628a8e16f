//! Deadlines from the `grpc-timeout` header (gRPC over HTTP/2: 1–8 digits and a unit, H M S m u
//! n). The guard reads it once per call, ends the call with DEADLINE_EXCEEDED when it passes, and
//! hands it to the handlers as a request extension, so that work whose caller will not wait for
//! it is never started.

use std::time::{Duration, Instant};

use http::HeaderMap;

/// When the caller stops waiting: the call's arrival plus the `grpc-timeout` it sent. Carried in
/// the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Deadline(pub(super) Instant);

/// The deadline of a call received at `received`, if its headers set one.
pub(super) fn deadline(headers: &HeaderMap, received: Instant) -> Option<Instant> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    received.checked_add(parse(value)?)
}

/// The deadline a handler's request carries, if any.
pub(super) fn of<T>(request: &tonic::Request<T>) -> Option<Instant> {
    request.extensions().get::<Deadline>().map(|deadline| deadline.0)
}

fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_garbage() {
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "123456789S", "5x", "-5S", "5"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_deadline_is_counted_from_arrival() {
        let mut headers = HeaderMap::new();
        let now = Instant::now();
        assert_eq!(deadline(&headers, now), None);
        headers.insert("grpc-timeout", "100m".parse().expect("ascii"));
        assert_eq!(deadline(&headers, now), Some(now + Duration::from_millis(100)));
        headers.insert("grpc-timeout", "99999999H".parse().expect("ascii"));
        assert!(deadline(&headers, now).is_some(), "the largest timeout does not overflow");
    }
}
