//! Rust client of the explain gRPC service.
//!
//! ```no_run
//! # async fn run() -> Result<(), explain_client::Error> {
//! use explain_client::{Client, proto};
//!
//! let mut client = Client::connect("http://127.0.0.1:50051").await?;
//! let info = client.model_info().await?;
//! let png = std::fs::read("cat.png").expect("an image");
//! let explanation = client
//!     .explain(proto::ExplainRequest {
//!         image: Some(proto::Image { source: Some(proto::image::Source::Encoded(png.into())) }),
//!         feature_maps: vec![proto::FeatureMapSpec { layer: "layer2.1".into(), ..Default::default() }],
//!         ..Default::default()
//!     })
//!     .await?;
//! let maps = &explanation.tensors["activation/layer2.1"].array; // [1, C, H, W]
//! println!("{} layers; layer2.1 maps {:?}", info.layers.len(), maps.shape());
//! # Ok(())
//! # }
//! ```

mod assemble;

use std::collections::BTreeMap;

pub use explain_proto::v1 as proto;
use explain_proto::v1::explain_service_client::ExplainServiceClient;
use tonic::transport::Channel;

pub use self::assemble::{Assembler, ReceivedTensor};

/// The README's Rust examples, compiled as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Everything that can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is invalid or unreachable.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The response stream was malformed (missing chunks, no summary, …).
    #[error("malformed response: {0}")]
    Assembly(String),
}

/// A whole explanation, reassembled from the response stream.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The prediction (first message).
    pub prediction: proto::Prediction,
    /// Tensors by name, decoded to f32.
    pub tensors: BTreeMap<String, ReceivedTensor>,
    /// Rendered PNGs by name.
    pub images: BTreeMap<String, proto::RenderedImage>,
    /// The summary (last message).
    pub summary: proto::Summary,
}

/// A connection to one explain server.
#[derive(Clone, Debug)]
pub struct Client {
    inner: ExplainServiceClient<Channel>,
}

impl Client {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:50051`.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.into())?.connect().await?;
        Ok(Self { inner: ExplainServiceClient::new(channel).max_decoding_message_size(64 << 20) })
    }

    /// The generated client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut ExplainServiceClient<Channel> {
        &mut self.inner
    }

    /// Describes the served model.
    pub async fn model_info(&mut self) -> Result<proto::GetModelInfoResponse, Error> {
        Ok(self.inner.get_model_info(proto::GetModelInfoRequest {}).await?.into_inner())
    }

    /// Classifies one image.
    pub async fn classify(&mut self, request: proto::ClassifyRequest) -> Result<proto::ClassifyResponse, Error> {
        Ok(self.inner.classify(request).await?.into_inner())
    }

    /// Explains one image and reassembles the whole response.
    pub async fn explain(&mut self, request: proto::ExplainRequest) -> Result<Explanation, Error> {
        let mut stream = self.inner.explain(request).await?.into_inner();
        let (mut prediction, mut summary) = (None, None);
        let mut assembler = Assembler::default();
        let mut images = BTreeMap::new();
        while let Some(message) = stream.message().await? {
            match message.item {
                Some(proto::explain_response::Item::Prediction(p)) => prediction = Some(p),
                Some(proto::explain_response::Item::TensorChunk(chunk)) => assembler.push(chunk)?,
                Some(proto::explain_response::Item::RenderedImage(image)) => {
                    images.insert(image.name.clone(), image);
                }
                Some(proto::explain_response::Item::Summary(s)) => summary = Some(s),
                None => return Err(Error::Assembly("an empty message in the stream".into())),
            }
        }
        Ok(Explanation {
            prediction: prediction.ok_or_else(|| Error::Assembly("no prediction in the stream".into()))?,
            tensors: assembler.finish()?,
            images,
            summary: summary.ok_or_else(|| Error::Assembly("the stream ended without a summary".into()))?,
        })
    }
}
