//! Deadlines from the `grpc-timeout` header (gRPC over HTTP/2: 1–8 digits and a unit, H M S m u
//! n), so work whose caller will not wait for it is never started.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// When the caller stops waiting, if it said: `received` plus the `grpc-timeout` it sent.
pub(super) fn deadline(metadata: &MetadataMap, received: Instant) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    Some(received + parse(value)?)
}

fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
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
        let mut metadata = MetadataMap::new();
        let now = Instant::now();
        assert_eq!(deadline(&metadata, now), None);
        metadata.insert("grpc-timeout", "100m".parse().expect("ascii"));
        assert_eq!(deadline(&metadata, now), Some(now + Duration::from_millis(100)));
    }
}
