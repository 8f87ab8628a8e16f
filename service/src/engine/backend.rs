//! The backend contract: run one batch through one of the model's graphs and return the named
//! outputs asked for. Synchronous, with no tonic or ONNX Runtime types, so a fake can stand in.

use std::collections::HashMap;

use ndarray::{Array4, ArrayD};

/// Which of the model's graphs a batch runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GraphKind {
    /// The forward pass with every named layer as an output.
    Forward,
    /// The forward and backward pass: activations and gradients.
    Gradient,
    /// The forward pass and the backward pass down to the last feature layer only: activations
    /// and the gradients of that layer and those after it (Grad-CAM's default layer).
    HeadGradient,
}

/// One batch of rows for the engine.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The graph to run.
    pub graph: GraphKind,
    /// Preprocessed images, `[rows, 3, H, W]`.
    pub images: Array4<f32>,
    /// Further int64 inputs by name, one value per row (the gradient graph's target, objective
    /// and guided flags).
    pub int_inputs: Vec<(String, Vec<i64>)>,
    /// Names of the graph outputs to return.
    pub outputs: Vec<String>,
}

/// Graph outputs by name, each with the batch dimension first.
pub type Outputs = HashMap<String, ArrayD<f32>>;

/// Why a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime could not be initialised or a session could not be created.
    #[error("cannot start the inference runtime: {0}")]
    Init(String),
    /// A run failed.
    #[error("inference failed: {0}")]
    Run(String),
    /// An output that is not part of the graph was asked for.
    #[error("the graph has no output `{0}`")]
    UnknownOutput(String),
}

/// Runs batches. Implementations are used from one thread at a time.
pub trait Backend: Send + 'static {
    /// Runs `batch` and returns the outputs it names.
    fn run(&mut self, batch: &Batch) -> Result<Outputs, BackendError>;

    /// The execution provider the backend runs on (`CPUExecutionProvider`, `CUDAExecutionProvider`).
    fn execution_provider(&self) -> &str;
}
