//! Logging with `tracing`: human-readable or JSON lines on stderr, filtered by `EXPLAIN_LOG`.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Fails if the filter does not parse.
pub fn init(config: &LogConfig) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(&config.log_filter)?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second installation (tests) is harmless: the first subscriber stays.
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    Ok(())
}
