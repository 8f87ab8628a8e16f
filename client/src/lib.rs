//! Rust client of the explain gRPC service: one line for an explanation, results as `ndarray`
//! tensors.
//!
//! ```no_run
//! # async fn run() -> Result<(), explain_client::Error> {
//! use explain_client::Client;
//!
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let png = std::fs::read("cat.png")?;
//! let explanation = client.explain(png).saliency().grad_cam("layer4.1").feature_maps("layer2.1").send().await?;
//! let maps = &explanation.tensors["activation/layer2.1"].array; // [1, C, H, W]
//! println!("predicted {:?}; layer2.1 {:?}", explanation.prediction.target, maps.shape());
//! # Ok(())
//! # }
//! ```
//!
//! [`Client::builder`] sets timeouts, TLS, a bearer token, compression, retries (UNAVAILABLE and
//! RESOURCE_EXHAUSTED, honouring the server's pushback) and client-side balancing across several
//! endpoints or the pods behind one DNS name. [`Client::explain_many`] streams many images over one
//! call with bounded in-flight work. [`render`] draws heatmaps and feature-map grids over the model's view made by [`preprocess`]
//! (both from `explain-imaging`, which the service uses too).

mod assemble;
mod builder;
mod client;
mod discovery;
mod error;
mod image;
mod request;
mod retry;
mod stream;

pub use explain_imaging::{preprocess, render};
pub use explain_proto::v1 as proto;

pub use self::{
    assemble::{Assembler, ReceivedTensor},
    builder::{ClientBuilder, Compression},
    client::{Client, Explanation},
    discovery::{Resolver, SystemResolver},
    error::Error,
    image::ImageInput,
    request::ExplainBuilder,
    retry::RetryPolicy,
    stream::Completed,
};

/// The README's Rust examples, compiled as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
