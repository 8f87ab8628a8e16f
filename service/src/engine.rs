//! The inference engine: a backend (ONNX Runtime, or a fake in tests) owned by a dedicated thread,
//! fed through a bounded queue that merges waiting jobs into batches, answering through oneshot
//! channels. Nothing here knows tonic.

mod backend;
mod batching;
mod ort_backend;
mod thread;

pub use self::backend::{Backend, BackendError, Batch, GraphKind, GraphNames, Output, Outputs, RowSettings};
pub use self::batching::BatchPolicy;
pub use self::ort_backend::{ExecutionProviderChoice, LazyGraphs, OrtBackend, OrtOptions, measure_shapes};
pub use self::thread::{EngineError, EngineHandle, Permit, Ran};
