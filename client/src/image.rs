//! What can be explained: encoded image bytes (the server decodes and preprocesses them) or an
//! already preprocessed `[1, 3, H, W]` float32 tensor.

use std::path::Path;

use ndarray::{Array4, ArrayD};

use explain_proto::codec;

use crate::proto;

/// An image for a request.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInput(pub(crate) proto::Image);

impl ImageInput {
    /// The bytes of the image file at `path` (PNG, JPEG, WebP, …).
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(std::fs::read(path)?.into())
    }

    /// The protobuf message.
    pub fn into_proto(self) -> proto::Image {
        self.0
    }
}

impl From<Vec<u8>> for ImageInput {
    fn from(encoded: Vec<u8>) -> Self {
        Self(proto::Image { source: Some(proto::image::Source::Encoded(encoded.into())) })
    }
}

impl From<&[u8]> for ImageInput {
    fn from(encoded: &[u8]) -> Self {
        encoded.to_vec().into()
    }
}

impl From<bytes::Bytes> for ImageInput {
    fn from(encoded: bytes::Bytes) -> Self {
        Self(proto::Image { source: Some(proto::image::Source::Encoded(encoded)) })
    }
}

impl From<&ArrayD<f32>> for ImageInput {
    /// A preprocessed tensor (its shape must be the model's `[1, 3, H, W]`).
    fn from(tensor: &ArrayD<f32>) -> Self {
        let values = tensor.as_standard_layout();
        let values = values.as_slice().expect("a standard-layout array is one slice");
        let data = codec::encode(values, tensor.shape(), proto::DataType::Float32).data;
        Self(proto::Image {
            source: Some(proto::image::Source::Tensor(proto::Tensor {
                shape: tensor.shape().iter().map(|&d| d as i64).collect(),
                dtype: proto::DataType::Float32 as i32,
                data,
                quantization: None,
            })),
        })
    }
}

impl From<&Array4<f32>> for ImageInput {
    /// A preprocessed `[1, 3, H, W]` tensor.
    fn from(tensor: &Array4<f32>) -> Self {
        (&tensor.clone().into_dyn()).into()
    }
}

impl From<proto::Image> for ImageInput {
    fn from(image: proto::Image) -> Self {
        Self(image)
    }
}
