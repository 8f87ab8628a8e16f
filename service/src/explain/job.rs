//! What a caller asked for, validated: the domain form of `ClassifyRequest` and `ExplainRequest`.

use bytes::Bytes;
use ndarray::Array4;

/// The image of a request.
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// Encoded bytes, decoded and preprocessed by the service.
    Encoded(Bytes),
    /// A preprocessed `[1, 3, H, W]` tensor, used as is.
    Tensor(Array4<f32>),
}

/// The class an explanation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetClass {
    /// The class the model predicts.
    Predicted,
    /// A class index (validated against the model's classes).
    Index(usize),
}

/// The scalar whose gradients are attributions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// The target logit.
    #[default]
    Logit,
    /// The image's cross-entropy loss against the target.
    CrossEntropy,
}

/// Which channels of a layer to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelSelection {
    /// Every channel, in order.
    All,
    /// These channels, in this order (validated: in range, no duplicates).
    List(Vec<usize>),
    /// The k channels with the largest mean, largest first.
    TopK(usize),
}

/// Element type tensors are sent in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// float32.
    #[default]
    Float32,
    /// IEEE half precision.
    Float16,
    /// bfloat16.
    BFloat16,
    /// uint8, affine per channel.
    Uint8,
}

/// One layer tensor to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureMapRequest {
    /// Index of the layer in `ModelInfo::layers`.
    pub layer: usize,
    /// Channel selection.
    pub channels: ChannelSelection,
}

/// A validated `Classify` request.
#[derive(Clone, Debug)]
pub struct ClassifyJob {
    /// The image.
    pub image: ImageInput,
    /// Number of classes to return.
    pub top_k: usize,
}

/// A validated `Explain` request.
#[derive(Clone, Debug)]
pub struct ExplainJob {
    /// The image.
    pub image: ImageInput,
    /// The class explained.
    pub target: TargetClass,
    /// The objective differentiated.
    pub objective: Objective,
    /// Layer tensors to return, in request order.
    pub feature_maps: Vec<FeatureMapRequest>,
    /// Encoding of the returned tensors.
    pub encoding: Encoding,
    /// Number of classes in the prediction.
    pub top_k: usize,
}
