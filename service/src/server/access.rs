//! Bearer-token authentication: `authorization: Bearer <token>` checked against the tokens of a
//! file (one per line; blank lines and `#` comments ignored; several allowed, so a token can be
//! rotated without a gap), compared in constant time with `subtle`, never logged. Health and
//! reflection may be left open for probes and grpcurl when configured.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use subtle::ConstantTimeEq;
use tonic::Status;

use super::reload::{self, Reloading};

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The file has no token.
    #[error("the token file {0} holds no token")]
    Empty(String),
}

/// The accepted tokens.
pub(super) struct Tokens(Vec<Vec<u8>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} redacted)", self.0.len())
    }
}

impl Tokens {
    /// Reads the tokens of `path`.
    pub(super) fn read(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokensError::Read { path: path.display().to_string(), source })?;
        let tokens: Vec<Vec<u8>> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| line.as_bytes().to_vec())
            .collect();
        if tokens.is_empty() {
            return Err(TokensError::Empty(path.display().to_string()));
        }
        Ok(Self(tokens))
    }

    /// The tokens of `path`, read again every `interval` in which the file changed.
    pub(super) fn watch(path: PathBuf, interval: Duration) -> Result<Arc<Reloading<Self>>, TokensError> {
        reload::watch("bearer tokens", vec![path.clone()], interval, move || Self::read(&path))
    }

    /// Whether `candidate` is one of the tokens; every token is compared, in constant time.
    fn accepts(&self, candidate: &[u8]) -> bool {
        let mut accepted = subtle::Choice::from(0);
        for token in &self.0 {
            accepted |= token.as_slice().ct_eq(candidate);
        }
        accepted.into()
    }

    /// Checks a call's `authorization` header; the error is UNAUTHENTICATED.
    pub(super) fn check(&self, authorization: Option<&http::HeaderValue>) -> Result<(), Status> {
        let Some(value) = authorization else {
            return Err(Status::unauthenticated("authorization: a bearer token is required"));
        };
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?;
        if self.accepts(token) { Ok(()) } else { Err(Status::unauthenticated("authorization: the token is not valid")) }
    }
}

/// Whether a call to `path` may skip authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenServices {
    /// `grpc.health.v1.Health` (Kubernetes probes).
    pub health: bool,
    /// Server reflection (grpcurl's `list` and `describe`).
    pub reflection: bool,
}

impl OpenServices {
    /// Whether `path` (`/package.Service/Method`) is open.
    pub(super) fn allows(&self, path: &str) -> bool {
        (self.health && path.starts_with("/grpc.health.v1.Health/"))
            || (self.reflection
                && (path.starts_with("/grpc.reflection.v1.ServerReflection/")
                    || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens(vec![b"first-token".to_vec(), b"second".to_vec()])
    }

    fn header(text: &str) -> http::HeaderValue {
        text.parse().expect("a header value")
    }

    #[test]
    fn every_listed_token_is_accepted_and_nothing_else() {
        assert!(tokens().check(Some(&header("Bearer first-token"))).is_ok());
        assert!(tokens().check(Some(&header("Bearer second"))).is_ok());
        for bad in ["Bearer first", "Bearer first-token2", "Bearer ", "first-token", "Basic second"] {
            let status = tokens().check(Some(&header(bad))).expect_err(bad);
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("first-token"), "tokens are never echoed: {status:?}");
        }
        assert_eq!(tokens().check(None).expect_err("missing").code(), tonic::Code::Unauthenticated);
        assert!(!format!("{:?}", tokens()).contains("second"), "Debug redacts");
    }

    #[test]
    fn token_files_skip_comments_and_need_a_token() {
        let path = std::env::temp_dir().join(format!("explain-tokens-{}.txt", std::process::id()));
        std::fs::write(&path, "# rotated 2026-12\n\n  alpha  \nbeta\n").expect("write");
        let read = Tokens::read(&path).expect("tokens");
        assert!(read.accepts(b"alpha") && read.accepts(b"beta") && !read.accepts(b"# rotated 2026-12"));
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(matches!(Tokens::read(&path), Err(TokensError::Empty(_))));
        std::fs::remove_file(&path).expect("remove");
    }

    #[test]
    fn only_the_configured_services_are_open() {
        let open = OpenServices { health: true, reflection: false };
        assert!(open.allows("/grpc.health.v1.Health/Check"));
        assert!(!open.allows("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(!open.allows("/explain.v1.ExplainService/Explain"));
        assert!(!OpenServices::default().allows("/grpc.health.v1.Health/Check"));
    }
}
