//! The boundary between protobuf and the domain: requests validated into jobs (errors name the
//! field), results turned into messages, tensors encoded (with `explain_proto::codec`) and chunked.

mod request;
mod response;

pub use self::request::{MAX_ATTRIBUTIONS, MAX_FEATURE_MAPS, RequestError, classify_job, explain_job};
pub use self::response::{faithfulness, model_info, prediction, summary, tensor_chunks};
