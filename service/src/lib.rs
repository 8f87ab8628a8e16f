//! explain: a gRPC service that shows what a convolutional network sees.
//!
//! A request flows `server` (tonic handlers) → `api` (validation into jobs) → `explain` (the
//! pipeline) → `engine` (ONNX Runtime on a dedicated thread) and back. `model` reads and rewrites
//! ONNX graphs; `preprocess` turns images into tensors; `config` is the command line.

pub mod api;
pub mod augment;
pub mod config;
pub mod engine;
pub mod explain;
pub mod model;
pub mod preprocess;
pub mod server;
pub mod telemetry;
