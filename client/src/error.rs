//! The client's one error type.

/// Everything that can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is unreachable.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The builder's settings are invalid (an endpoint, TLS material, a DNS name).
    #[error("invalid client settings: {0}")]
    Config(String),
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The response stream was malformed (missing chunks, no summary, …).
    #[error("malformed response: {0}")]
    Assembly(String),
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
