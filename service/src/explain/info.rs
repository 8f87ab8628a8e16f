//! What the service knows about its model once loaded: input and preprocessing, layers with their
//! shapes (measured by a warm-up run), classes and labels, execution provider.

use std::path::{Path, PathBuf};

use crate::{
    engine::{BackendError, Output, Outputs},
    model::{
        InputTensor,
        layers::{NamedLayer, Naming},
    },
    preprocess::Preprocessing,
};

/// A named layer and its output shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Name in requests.
    pub name: String,
    /// The graph tensor.
    pub tensor: String,
    /// Output shape without the batch dimension, e.g. `[128, 28, 28]`.
    pub shape: Vec<usize>,
    /// Why the layer has no tail graph (the rest of the network after it, Ablation-CAM's), if it
    /// has none.
    pub tail_unavailable: Option<String>,
}

impl LayerInfo {
    /// Number of channels (the first non-batch dimension).
    pub fn channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

/// The served model, as `GetModelInfo` describes it.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Display name.
    pub name: String,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// The image input.
    pub input: InputTensor,
    /// How images become inputs.
    pub preprocessing: Preprocessing,
    /// The logits tensor.
    pub logits: String,
    /// Named layers in graph order.
    pub layers: Vec<LayerInfo>,
    /// How layers were named.
    pub naming: Naming,
    /// Number of classes.
    pub num_classes: usize,
    /// Class labels, when given.
    pub labels: Option<Vec<String>>,
    /// Execution provider in use.
    pub execution_provider: String,
    /// Whether attributions and layer gradients can be computed.
    pub gradients: GradientSupport,
    /// The layer (index in `layers`) where the cheap head-gradient graph's backward pass ends:
    /// jobs that need no gradient before it use that graph.
    pub head_layer: Option<usize>,
}

/// Whether the model could be differentiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GradientSupport {
    /// The gradient graph is loaded.
    Available,
    /// The augmenter refused the model, for this reason.
    Unavailable(String),
}

impl GradientSupport {
    /// The reason gradients are unavailable, if they are.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            Self::Available => None,
            Self::Unavailable(reason) => Some(reason),
        }
    }
}

impl ModelInfo {
    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<(usize, &LayerInfo)> {
        self.layers.iter().enumerate().find(|(_, layer)| layer.name == name)
    }

    /// The input's `(height, width)`.
    pub fn input_size(&self) -> (usize, usize) {
        (self.input.height as usize, self.input.width as usize)
    }

    /// Layer names, comma-separated, for error messages.
    pub fn layer_names(&self) -> String {
        self.layers.iter().map(|layer| layer.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The label of class `index`, or an empty string.
    pub fn label(&self, index: usize) -> &str {
        self.labels.as_ref().and_then(|labels| labels.get(index)).map_or("", String::as_str)
    }
}

/// Named layers joined with the shapes of their activations in a warm-up run (batch 1), index
/// for index: a layer's index is its [`Output::Activation`].
pub(crate) fn layer_infos(layers: &[NamedLayer], warm: &Outputs) -> Result<Vec<LayerInfo>, BackendError> {
    layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let output = Output::Activation(index);
            let shape = warm.get(&output).ok_or(BackendError::UnknownOutput(output))?.shape();
            Ok(LayerInfo {
                name: layer.name.clone(),
                tensor: layer.tensor.clone(),
                shape: shape.get(1..).unwrap_or_default().to_vec(),
                tail_unavailable: None,
            })
        })
        .collect()
}

/// Why a labels file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// It could not be read.
    #[error("cannot read labels file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It has the wrong number of labels.
    #[error("{path} lists {found} labels; the model has {expected} classes")]
    Count {
        /// The file.
        path: PathBuf,
        /// Labels found.
        found: usize,
        /// Classes of the model.
        expected: usize,
    },
}

/// Reads a labels file: one label per line, in class order; blank trailing lines ignored.
pub(crate) fn read_labels(path: &Path, num_classes: usize) -> Result<Vec<String>, LabelsError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Read { path: path.to_owned(), source })?;
    counted(crate::model::label_lines(&text), path, num_classes)
}

/// `labels`, if there is one for each of `num_classes` classes; `origin` names where they came from.
pub(crate) fn counted(labels: Vec<String>, origin: &Path, num_classes: usize) -> Result<Vec<String>, LabelsError> {
    if labels.len() != num_classes {
        return Err(LabelsError::Count { path: origin.to_owned(), found: labels.len(), expected: num_classes });
    }
    Ok(labels)
}
