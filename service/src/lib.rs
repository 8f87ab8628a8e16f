//! explain: a gRPC service that shows what a convolutional network sees.
//!
//! A request flows `server` (tonic handlers) → `api` (validation into jobs) → `explain` (the
//! pipeline) → `engine` (ONNX Runtime on a dedicated thread) and back. `model` loads a classifier
//! and `augment` adds its backward pass, both over the ONNX helpers of `graph` (so `model` uses
//! `augment` and not the other way round); `preprocess` (from `explain-imaging`, shared with the
//! SDK's tools) turns images into tensors; `config` is the command line.

pub mod api;
pub mod augment;
pub mod config;
pub mod engine;
pub mod explain;
pub(crate) mod graph;
pub mod metrics;
pub mod model;
pub(crate) mod noise;
pub mod server;
pub mod telemetry;

pub use explain_imaging::preprocess;
