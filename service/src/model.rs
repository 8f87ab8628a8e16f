//! Models: loading a classifier (an ONNX export, or the embedded default), normalising its graph,
//! naming its layers, and building the graph ONNX Runtime runs.

mod cache;
pub mod layers;
mod modules;
mod randomise;
mod surgery;
mod tail;
mod torchvision;

use std::path::{Path, PathBuf};

use explain_proto::onnx::{GraphProto, ModelProto};
use prost::Message;
use sha2::{Digest, Sha256};

use self::layers::LayerMap;
pub use self::{cache::GraphCache, randomise::HEAD, tail::TailError};
use crate::augment::{self, AugmentError, AugmentSpec, Backward, Shapes};

/// The model served when none is given: torchvision's ResNet-18 topology at base width 16 (layer
/// widths 16/32/64/128), 112 × 112 input, trained by `tools/train/train.py` to tell apart the ten
/// shapes `tools/shapes/shapes.py` draws, exported by `torch.onnx.export` (legacy exporter).
const DEFAULT_MODEL: &[u8] = include_bytes!("../models/default.onnx");

/// The default model's class names, one a line, in class order.
const DEFAULT_LABELS: &str = include_str!("../models/default.labels.txt");

/// Input size of models built from safetensors weights when none is given.
pub const DEFAULT_SAFETENSORS_INPUT_SIZE: u32 = 224;

/// The labels of a labels file's text: one a line, trimmed, blank trailing lines ignored.
pub fn label_lines(text: &str) -> Vec<String> {
    text.trim_end().lines().map(|line| line.trim().to_owned()).collect()
}

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// The embedded default model.
    Embedded,
    /// An ONNX file, or a torchvision ResNet state dict saved as `.safetensors`.
    File(PathBuf),
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The graph does not have the shape of an image classifier.
    #[error("not an image classifier: {0}")]
    NotAClassifier(String),
    /// The safetensors file is not a torchvision ResNet state dict.
    #[error("not a torchvision ResNet state dict: {0}")]
    Safetensors(String),
    /// No layer has this name.
    #[error("the model has no layer `{layer}`; its layers are {known}")]
    UnknownLayer {
        /// The name asked for.
        layer: String,
        /// The names it has.
        known: String,
    },
    /// The input's spatial size is symbolic and was not given.
    #[error("the graph's input size is not fixed: give it with --input-size")]
    InputSizeUnknown,
}

/// The graph's image input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputTensor {
    /// Graph input name.
    pub name: String,
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
}

/// A loaded classifier: its normalised forward graph and what it is made of.
#[derive(Clone, Debug)]
pub struct Model {
    /// Display name: the file stem, or `default`.
    pub name: String,
    /// SHA-256 of the model file, hex.
    pub sha256: String,
    /// The forward graph, batch dimension symbolic.
    pub proto: ModelProto,
    /// The image input.
    pub input: InputTensor,
    /// The logits tensor (the graph's output).
    pub logits: String,
    /// The named layers.
    pub layers: LayerMap,
    /// Class names that come with the model (the embedded default's), in class order.
    pub labels: Option<Vec<String>>,
}

impl Model {
    /// Loads a model from `source`. `input_size` fixes the input's height and width when the graph
    /// leaves them symbolic.
    pub fn load(source: &ModelSource, input_size: Option<u32>) -> Result<Self, ModelError> {
        match source {
            ModelSource::Embedded => Ok(Self {
                labels: Some(label_lines(DEFAULT_LABELS)),
                ..Self::from_onnx("default", DEFAULT_MODEL, input_size)?
            }),
            ModelSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| ModelError::Read { path: path.clone(), source })?;
                if path.extension().is_some_and(|extension| extension == "safetensors") {
                    let size = input_size.unwrap_or(DEFAULT_SAFETENSORS_INPUT_SIZE);
                    let proto = torchvision::resnet_from_safetensors(&bytes, size)?;
                    return Self::from_proto(&file_stem(path), hex(&Sha256::digest(&bytes)), proto, Some(size));
                }
                Self::from_onnx(&file_stem(path), &bytes, input_size)
            }
        }
    }

    /// Reads an ONNX model from its bytes.
    pub fn from_onnx(name: &str, bytes: &[u8], input_size: Option<u32>) -> Result<Self, ModelError> {
        Self::from_proto(name, hex(&Sha256::digest(bytes)), ModelProto::decode(bytes)?, input_size)
    }

    fn from_proto(
        name: &str,
        sha256: String,
        mut proto: ModelProto,
        input_size: Option<u32>,
    ) -> Result<Self, ModelError> {
        let graph = proto.graph.as_mut().ok_or_else(|| ModelError::NotAClassifier("the model has no graph".into()))?;
        let input = surgery::normalise(graph, input_size)?;
        let logits = match graph.output.as_slice() {
            [output] => output.name().to_owned(),
            outputs => {
                return Err(ModelError::NotAClassifier(format!(
                    "expected one output (the logits), found {}",
                    outputs.len()
                )));
            }
        };
        let layers = layers::name_layers(graph, &input.name, &logits);
        Ok(Self { name: name.to_owned(), sha256, proto, input, logits, layers, labels: None })
    }

    /// The graph ONNX Runtime runs for predictions and feature maps: the forward pass with the
    /// logits and every named layer as outputs.
    pub fn forward_graph(&self) -> ModelProto {
        surgery::with_layer_outputs(&self.proto, &self.logits, &self.layers)
    }

    /// Whether the layer whose tensor is `layer` has a tail graph ([`Model::tail_graph`]): why not.
    pub fn check_tail(&self, layer: &str) -> Result<(), TailError> {
        let empty = GraphProto::default();
        tail::tail_nodes(self.proto.graph.as_ref().unwrap_or(&empty), layer, &self.logits).map(|_| ())
    }

    /// The graph from the tensor `layer` (of shape `[C, h, w]` per row) to the logits.
    pub fn tail_graph(&self, layer: &str, shape: &[i64]) -> Result<ModelProto, TailError> {
        tail::tail(&self.proto, layer, shape, &self.logits)
    }

    /// The forward graph with every tensor as an output, to measure all shapes in one run.
    pub fn probe_graph(&self) -> ModelProto {
        surgery::with_every_output(&self.proto)
    }

    /// The last feature layer before the pooled head (`layer4.1` of a ResNet): Grad-CAM's default
    /// layer, and where the cheap head-gradient graph starts. Only for graphs named as ResNets.
    pub fn head_layer(&self) -> Option<&layers::NamedLayer> {
        match (self.layers.naming, self.layers.layers.as_slice()) {
            (layers::Naming::ResNet, [.., head, _avgpool]) => Some(head),
            (layers::Naming::ResNet | layers::Naming::TensorNames | layers::Naming::ModulePaths, _) => None,
        }
    }

    /// The key under which the gradient graph starting at `from` is cached: the model's content,
    /// the augmenter's version, the input size, `from` and what the backward pass computes.
    pub fn gradient_graph_key(&self, from: &str, backward: Backward) -> String {
        let (sha256, version, height, width) = (&self.sha256, augment::VERSION, self.input.height, self.input.width);
        let key = match backward {
            Backward::Gradient => format!("{sha256}/{version}/{height}x{width}/{from}"),
            Backward::DeepLift => format!("{sha256}/{version}/{height}x{width}/{from}/deep_lift"),
        };
        format!("gradient-{}", hex(&Sha256::digest(key.as_bytes())))
    }

    /// The forward + backward graph (see [`augment`]) whose backward pass ends at `from` (the
    /// input, or a layer tensor) and computes `backward`, given the shapes of the model's tensors
    /// at batch 1 as [`Model::probe_graph`] measures them.
    pub fn gradient_graph(
        &self,
        measured: &Shapes,
        from: &str,
        backward: Backward,
    ) -> Result<ModelProto, AugmentError> {
        let mut shapes = measured.clone();
        shapes.insert(self.input.name.clone(), vec![1, 3, i64::from(self.input.height), i64::from(self.input.width)]);
        if let Some(graph) = self.proto.graph.as_ref() {
            shapes.extend(graph.initializer.iter().map(|tensor| (tensor.name().to_owned(), tensor.dims.clone())));
        }
        let layers: Vec<String> = self.layers.layers.iter().map(|layer| layer.tensor.clone()).collect();
        let spec = AugmentSpec { from, logits: &self.logits, layers: &layers, backward };
        augment::augment(&self.forward_graph(), &spec, &shapes)
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".to_owned(), |stem| stem.to_string_lossy().into_owned())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
