//! The one mapping from the service's errors to gRPC statuses, with `google.rpc` details:
//! `BadRequest` for invalid fields, `RetryInfo` (and the `grpc-retry-pushback-ms` trailer that
//! gRPC's retry policy honours) for overload.

use std::time::Duration;

use tonic::{Code, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    api::RequestError,
    engine::{BackendError, EngineError},
    explain::ExplainError,
    preprocess::PreprocessError,
};

/// How long an overloaded server asks callers to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Every error a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is invalid or asks for something unimplemented.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The pipeline failed.
    #[error(transparent)]
    Explain(#[from] ExplainError),
    /// The model is still loading.
    #[error("the model is loading; retry shortly")]
    Loading,
    /// The model failed to load; the server cannot serve.
    #[error("the model failed to load: {0}")]
    LoadFailed(String),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::Request(RequestError::Invalid { field, description }) => {
                bad_request(&field, &description, message)
            }
            ApiError::Request(RequestError::Unimplemented(_)) => Status::unimplemented(message),
            ApiError::Explain(ExplainError::Preprocess(error)) => preprocess(&error, message),
            ApiError::Explain(ExplainError::Engine(EngineError::Overloaded { .. })) => overloaded(message),
            ApiError::Explain(ExplainError::Engine(EngineError::DeadlineExceeded)) => {
                Status::deadline_exceeded(message)
            }
            ApiError::Explain(ExplainError::Engine(EngineError::Stopped)) | ApiError::Loading => {
                Status::unavailable(message)
            }
            ApiError::Explain(ExplainError::Engine(
                EngineError::Backend(BackendError::Init(_) | BackendError::Run(_) | BackendError::UnknownOutput(_))
                | EngineError::Lost,
            ))
            | ApiError::Explain(ExplainError::Internal(_)) => {
                tracing::error!(%message, "request failed");
                Status::internal(message)
            }
            ApiError::Explain(
                ExplainError::GradientsUnavailable(_)
                | ExplainError::Engine(EngineError::Backend(BackendError::GraphUnavailable(_))),
            ) => Status::failed_precondition(message),
            ApiError::LoadFailed(_) => Status::unavailable(message),
        }
    }
}

fn bad_request(field: &str, description: &str, message: String) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request_violation(field.to_owned(), description.to_owned()),
    )
}

fn preprocess(error: &PreprocessError, message: String) -> Status {
    let field = "image.encoded";
    let message = format!("{field}: {message}");
    match error {
        PreprocessError::Empty
        | PreprocessError::TooManyBytes { .. }
        | PreprocessError::TooManyPixels { .. }
        | PreprocessError::Decode(_)
        | PreprocessError::View(_) => bad_request(field, &error.to_string(), message),
    }
}

fn overloaded(message: String) -> Status {
    let mut status =
        Status::with_error_details(Code::ResourceExhausted, message, ErrorDetails::with_retry_info(Some(RETRY_AFTER)));
    status.metadata_mut().insert("grpc-retry-pushback-ms", MetadataValue::from(RETRY_AFTER.as_millis() as u64));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_fields_carry_bad_request_details() {
        let error = RequestError::Invalid { field: "feature_maps[0].layer".into(), description: "no".into() };
        let status = Status::from(ApiError::from(error));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("feature_maps[0].layer"));
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("BadRequest detail").field_violations;
        assert_eq!(violations[0].field, "feature_maps[0].layer");
    }

    #[test]
    fn overload_asks_for_a_retry_with_pushback() {
        let status =
            Status::from(ApiError::from(ExplainError::from(EngineError::Overloaded { admitted: 4, capacity: 4 })));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()), Some("100"));
        assert_eq!(status.get_error_details().retry_info().and_then(|r| r.retry_delay), Some(RETRY_AFTER));
    }

    #[test]
    fn undecodable_images_name_the_field() {
        let status = Status::from(ApiError::from(ExplainError::from(PreprocessError::Decode("bad magic".into()))));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("image.encoded:"), "{}", status.message());
    }
}
