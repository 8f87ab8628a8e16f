//! The backend contract: run one batch through one of the model's graphs and return the outputs
//! asked for, typed ([`Output`], [`RowSettings`]) rather than spelled as graph tensor names.
//! Synchronous, with no tonic or ONNX Runtime types, so a fake can stand in.

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
    /// The forward pass from the layer with this index to the logits: its rows are that layer's
    /// activations (Ablation-CAM's ablated copies). Made on first use.
    Tail(usize),
    /// The forward pass and DeepLift's backward pass down to the input, on rows paired input,
    /// reference, input, reference, …: the input gradient of an input row is its DeepLift
    /// multiplier. Made on first use.
    DeepLift,
}

impl GraphKind {
    /// The graph's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Gradient => "gradient",
            Self::HeadGradient => "head_gradient",
            Self::Tail(_) => "tail",
            Self::DeepLift => "deep_lift",
        }
    }

    /// Whether the graph's session is made on the first batch that needs it, not at load.
    pub fn made_on_first_use(self) -> bool {
        matches!(self, Self::Tail(_) | Self::DeepLift)
    }

    /// Whether the graph takes [`RowSettings`] (the graphs with a backward pass).
    pub fn has_row_settings(self) -> bool {
        matches!(self, Self::Gradient | Self::HeadGradient | Self::DeepLift)
    }
}

/// A tensor a graph gives back, named by what it is; where it lives in the graph is the
/// backend's business ([`GraphNames`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The classifier's logits, `[rows, classes]`.
    Logits,
    /// The gradient of the objective with respect to the input image, `[rows, 3, H, W]`.
    InputGradient,
    /// The activation of the model's layer with this index.
    Activation(usize),
    /// The gradient of the objective with respect to that layer's activation.
    LayerGradient(usize),
}

/// Per-row settings of the gradient graphs' objective; empty for the forward graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowSettings {
    /// The class whose score is differentiated (−1: the row's predicted class).
    pub target: Vec<i64>,
    /// The brief's cross-entropy loss instead of the class logit.
    pub cross_entropy: Vec<bool>,
    /// Guided backpropagation (negative gradients zeroed at every ReLU).
    pub guided: Vec<bool>,
}

impl RowSettings {
    /// `rows` rows of one target and objective, guided where `guided` says (one flag per row).
    pub fn new(target: i64, cross_entropy: bool, guided: &[bool]) -> Self {
        let rows = guided.len();
        Self { target: vec![target; rows], cross_entropy: vec![cross_entropy; rows], guided: guided.to_vec() }
    }

    /// Appends the rows of `other`.
    pub fn extend(&mut self, other: &Self) {
        self.target.extend_from_slice(&other.target);
        self.cross_entropy.extend_from_slice(&other.cross_entropy);
        self.guided.extend_from_slice(&other.guided);
    }
}

/// Where each [`Output`] and row setting lives in the model's graphs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphNames {
    /// The logits tensor.
    pub logits: String,
    /// The input gradient tensor.
    pub input_gradient: String,
    /// Per layer (by index): its activation tensor and its gradient tensor.
    pub layers: Vec<(String, String)>,
    /// The int64 inputs of the gradient graphs: target, cross-entropy flag, guided flag.
    pub row_inputs: [String; 3],
}

impl GraphNames {
    /// The graph tensor holding `output`; `None` for a layer index the model does not have.
    pub fn tensor(&self, output: Output) -> Option<&str> {
        match output {
            Output::Logits => Some(&self.logits),
            Output::InputGradient => Some(&self.input_gradient),
            Output::Activation(layer) => self.layers.get(layer).map(|(activation, _)| activation.as_str()),
            Output::LayerGradient(layer) => self.layers.get(layer).map(|(_, gradient)| gradient.as_str()),
        }
    }
}

/// One batch of rows for the engine.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The graph to run.
    pub graph: GraphKind,
    /// Preprocessed images, `[rows, 3, H, W]`; for a tail graph, the layer's activations.
    pub images: Array4<f32>,
    /// The gradient graphs' per-row settings (empty for the forward and tail graphs).
    pub settings: RowSettings,
    /// The outputs to return.
    pub outputs: Vec<Output>,
}

/// Graph outputs, each with the batch dimension first.
pub type Outputs = HashMap<Output, ArrayD<f32>>;

/// Why a backend failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime could not be initialised or a session could not be created.
    #[error("cannot start the inference runtime: {0}")]
    Init(String),
    /// A run failed.
    #[error("inference failed: {0}")]
    Run(String),
    /// An output that is not part of the graph was asked for.
    #[error("the graph has no output {0:?}")]
    UnknownOutput(Output),
    /// A graph made on first use (a tail graph) could not be made from the model as it is now.
    #[error("{0}")]
    GraphUnavailable(String),
}

/// Runs batches. Implementations are used from one thread at a time.
pub trait Backend: Send + 'static {
    /// Runs `batch` and returns the outputs it names.
    fn run(&mut self, batch: &Batch) -> Result<Outputs, BackendError>;

    /// The execution provider the backend runs on (`CPUExecutionProvider`, `CUDAExecutionProvider`).
    fn execution_provider(&self) -> &str;
}
