//! The explanation pipeline, independent of gRPC: load a model and its engine, then turn validated
//! jobs into predictions and named tensors (request → preprocess → engine → post-process).

mod channels;
mod info;
mod job;
mod load;
mod prediction;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ndarray::{Array4, ArrayD, Axis};

pub use self::{
    info::{LabelsError, LayerInfo, ModelInfo},
    job::{ChannelSelection, ClassifyJob, Encoding, ExplainJob, FeatureMapRequest, ImageInput, Objective, TargetClass},
    load::{LoadError, LoadOptions},
    prediction::{ClassScore, Prediction},
};
use crate::{
    engine::{Batch, EngineError, EngineHandle, GraphKind, Ran},
    preprocess::{self, ImageLimits, PreprocessError},
};

/// Why a job failed after validation.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The image could not be decoded or is too large.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// The engine refused or failed the batch.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A bug: a worker task panicked or an output was missing.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A tensor to send, with its wire name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// `activation/<layer>`, `attribution/<method>`, …
    pub name: String,
    /// The values, batch dimension first.
    pub tensor: ArrayD<f32>,
    /// Original channel indices after selection; empty when all channels were kept in order.
    pub channel_indices: Vec<usize>,
}

/// Where the time of one job went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Decoding and preprocessing.
    pub preprocess: Duration,
    /// Waiting for the engine.
    pub queued: Duration,
    /// Engine runs.
    pub inference: Duration,
    /// Post-processing.
    pub postprocess: Duration,
    /// Rows the job put through the engine.
    pub rows: usize,
    /// Largest engine batch that carried the job.
    pub batch_size: usize,
}

/// The result of an `Explain` job.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The prediction.
    pub prediction: Prediction,
    /// Tensors in request order.
    pub tensors: Vec<NamedTensor>,
    /// Timings.
    pub stats: Stats,
}

/// A loaded model and its engine; cheap to share.
#[derive(Clone, Debug)]
pub struct Explainer {
    info: Arc<ModelInfo>,
    engine: EngineHandle,
    image_limits: ImageLimits,
}

impl Explainer {
    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Classifies one image.
    pub async fn classify(&self, job: ClassifyJob) -> Result<(Prediction, Stats), ExplainError> {
        let (images, preprocess) = self.prepare(job.image).await?;
        let ran = self.run(GraphKind::Forward, images, vec![self.info.logits.clone()]).await?;
        let started = Instant::now();
        let prediction = prediction::predict(self.logits(&ran)?, job.top_k, TargetClass::Predicted, Objective::Logit);
        Ok((prediction, stats(preprocess, &ran, started.elapsed())))
    }

    /// Explains one image: its prediction and the tensors the job asks for.
    pub async fn explain(&self, job: ExplainJob) -> Result<Explanation, ExplainError> {
        let (images, preprocess) = self.prepare(job.image).await?;
        let mut outputs = vec![self.info.logits.clone()];
        for request in &job.feature_maps {
            let tensor = &self.info.layers[request.layer].tensor;
            if !outputs.contains(tensor) {
                outputs.push(tensor.clone());
            }
        }
        let ran = self.run(GraphKind::Forward, images, outputs).await?;
        let started = Instant::now();
        let prediction = prediction::predict(self.logits(&ran)?, job.top_k, job.target, job.objective);
        let tensors = job
            .feature_maps
            .iter()
            .map(|request| {
                let layer = &self.info.layers[request.layer];
                let activation = self.output(&ran, &layer.tensor)?.clone();
                let selected = channels::select(activation, &request.channels, |v| v);
                Ok(NamedTensor {
                    name: format!("activation/{}", layer.name),
                    tensor: selected.tensor,
                    channel_indices: selected.indices,
                })
            })
            .collect::<Result<Vec<_>, ExplainError>>()?;
        Ok(Explanation { prediction, tensors, stats: stats(preprocess, &ran, started.elapsed()) })
    }

    /// Decodes and preprocesses the image off the async runtime.
    async fn prepare(&self, image: ImageInput) -> Result<(Array4<f32>, Duration), ExplainError> {
        let started = Instant::now();
        let images = match image {
            ImageInput::Tensor(tensor) => tensor,
            ImageInput::Encoded(bytes) => {
                let (limits, preprocessing) = (self.image_limits, self.info.preprocessing.clone());
                tokio::task::spawn_blocking(move || {
                    preprocess::decode(&bytes, limits).map(|image| preprocess::to_tensor(&image, &preprocessing))
                })
                .await
                .map_err(|e| ExplainError::Internal(format!("preprocessing task failed: {e}")))??
            }
        };
        Ok((images, started.elapsed()))
    }

    async fn run(&self, graph: GraphKind, images: Array4<f32>, outputs: Vec<String>) -> Result<Ran, ExplainError> {
        Ok(self.engine.run(Batch { graph, images, outputs }).await?)
    }

    fn output<'r>(&self, ran: &'r Ran, tensor: &str) -> Result<&'r ArrayD<f32>, ExplainError> {
        ran.outputs.get(tensor).ok_or_else(|| ExplainError::Internal(format!("the engine did not return `{tensor}`")))
    }

    fn logits<'r>(&self, ran: &'r Ran) -> Result<ndarray::ArrayView1<'r, f32>, ExplainError> {
        let logits = self.output(ran, &self.info.logits)?;
        logits
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map(|logits| logits.index_axis_move(Axis(0), 0))
            .map_err(|e| ExplainError::Internal(format!("logits have shape {:?}: {e}", logits.shape())))
    }
}

fn stats(preprocess: Duration, ran: &Ran, postprocess: Duration) -> Stats {
    Stats {
        preprocess,
        queued: ran.queued,
        inference: ran.inference,
        postprocess,
        rows: ran.rows,
        batch_size: ran.rows,
    }
}
