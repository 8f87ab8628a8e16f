//! The explanation pipeline, independent of gRPC: load a model and its engine, then turn validated
//! jobs into predictions and named tensors (request → preprocess → engine → post-process).

mod ablation;
mod ablation_cam;
mod attribute;
mod baseline;
mod channels;
mod compute;
mod deep_lift;
mod eigen;
mod faithfulness;
mod gradient_shap;
mod info;
mod job;
mod load;
mod methods;
mod picture;
mod prediction;
mod rise;
mod rows;
mod score_cam;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ndarray::{Array4, ArrayD, Axis};

pub use self::{
    baseline::DEFAULT_BLUR_SIGMA,
    faithfulness::Faithfulness,
    info::{GradientSupport, LabelsError, LayerInfo, ModelInfo},
    job::{
        Attribution, Baseline, CamVariant, ChannelSelection, ClassifyJob, Encoding, ExplainJob, FaithfulnessSettings,
        FeatureMapRequest, ImageInput, LayerQuantity, METHODS, Objective, OcclusionWindows, RenderOptions, RiseMasks,
        Segments, SmoothGradVariant, TargetClass, WindowsError, engine_rows,
    },
    load::{LoadError, LoadOptions, build_gradient_graph, measure_shapes},
    picture::Picture,
    prediction::{ClassScore, Prediction},
};
use crate::{
    engine::{Batch, BatchPolicy, EngineError, EngineHandle, GraphKind, Output, Outputs, Permit, Ran, RowSettings},
    metrics::Metrics,
    preprocess::{self, ImageLimits, PreprocessError},
};
use explain_imaging::render;
use image::RgbImage;

/// Why a job failed after validation.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The image could not be decoded or is too large.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// The engine refused or failed the batch.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The job needs gradients, and the model could not be differentiated.
    #[error("gradients are not available for this model: {0}")]
    GradientsUnavailable(String),
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

impl Stats {
    /// Counts one engine run.
    fn add(&mut self, ran: &Ran) {
        self.queued += ran.queued;
        self.inference += ran.inference;
        self.rows += ran.rows;
        self.batch_size = self.batch_size.max(ran.batch_rows);
    }
}

/// An admitted call: the rows it holds in the engine and when its caller stops waiting.
#[derive(Debug)]
struct Call {
    permit: Permit,
    deadline: Option<Instant>,
}

/// `output` of a run, or an internal error: the engine returns every output a batch names.
fn output(outputs: &Outputs, output: Output) -> Result<&ArrayD<f32>, ExplainError> {
    outputs.get(&output).ok_or_else(|| missing(output))
}

/// `output` of a run, moved out of `outputs`.
fn take(outputs: &mut Outputs, output: Output) -> Result<ArrayD<f32>, ExplainError> {
    outputs.remove(&output).ok_or_else(|| missing(output))
}

fn missing(output: Output) -> ExplainError {
    ExplainError::Internal(format!("the engine did not return {output:?}"))
}

/// Bounds on the work of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Images accepted.
    pub image: ImageLimits,
    /// Most rows one request may put through the engine.
    pub max_rows_per_request: usize,
}

/// The result of an `Explain` job.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The prediction.
    pub prediction: Prediction,
    /// Tensors in request order.
    pub tensors: Vec<NamedTensor>,
    /// Pictures of the tensors, when the job asks for them.
    pub pictures: Vec<Picture>,
    /// How faithful each attribution map is, when the job asks.
    pub faithfulness: Vec<Faithfulness>,
    /// Timings.
    pub stats: Stats,
}

/// A loaded model and its engine; cheap to share.
#[derive(Clone, Debug)]
pub struct Explainer {
    info: Arc<ModelInfo>,
    engine: EngineHandle,
    compute: compute::ComputePool,
    limits: Limits,
    batching: BatchPolicy,
    metrics: Metrics,
}

impl Explainer {
    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Bounds on requests.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs CPU-heavy `work` (encoding a tensor for the wire, say) on the bounded compute pool,
    /// off the async runtime; a panic in it is an internal error.
    pub async fn offload<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExplainError> {
        self.compute.run(what, work).await
    }

    /// Classifies one image, giving up at `deadline`.
    pub async fn classify(
        &self,
        job: ClassifyJob,
        deadline: Option<Instant>,
    ) -> Result<(Prediction, Stats), ExplainError> {
        let call = Call { permit: self.engine.admit(1)?, deadline };
        self.metrics.add_rows("image", 1);
        let (images, _view, preprocess) = self.prepare(job.image).await?;
        let ran =
            self.run_batch(GraphKind::Forward, images, RowSettings::default(), vec![Output::Logits], &call).await?;
        let prediction =
            prediction::predict(self.logits(&ran.outputs)?, job.top_k, TargetClass::Predicted, Objective::Logit);
        let mut stats = Stats { preprocess, ..Stats::default() };
        stats.add(&ran);
        Ok((prediction, stats))
    }

    /// Explains one image: its prediction, the tensors the job asks for, and their pictures when
    /// asked; gives up at `deadline`. Every row the job needs is admitted before any work starts.
    pub async fn explain(&self, job: ExplainJob, deadline: Option<Instant>) -> Result<Explanation, ExplainError> {
        let call = Call { permit: self.engine.admit(job.rows())?, deadline };
        self.metrics.add_rows("image", 1);
        for attribution in &job.attributions {
            self.metrics.add_rows(attribution.method(), attribution.extra_rows());
        }
        let (images, view, preprocess) = self.prepare(job.image.clone()).await?;
        let stats = Stats { preprocess, ..Stats::default() };
        let Some(options) = job.render else {
            return self.explain_images(job, images, stats, &call).await;
        };
        // Pictures are drawn over what the model saw: the model view of an encoded image, or the
        // denormalised tensor.
        let preprocessing = &self.info.preprocessing;
        let base = view
            .unwrap_or_else(|| render::denormalize(images.view().into_dyn(), preprocessing.mean, preprocessing.std));
        let mut explanation = self.explain_images(job, images, stats, &call).await?;
        let started = Instant::now();
        let mut explanation = self
            .compute
            .run("rendering", move || {
                explanation.pictures = picture::draw(&options, &base, &explanation.tensors);
                explanation
            })
            .await?;
        explanation.stats.postprocess += started.elapsed();
        Ok(explanation)
    }

    async fn explain_images(
        &self,
        job: ExplainJob,
        images: Array4<f32>,
        stats: Stats,
        call: &Call,
    ) -> Result<Explanation, ExplainError> {
        if job.attributions.is_empty() && !job.needs_gradients() {
            return self.explain_forward(job, images, stats, call).await;
        }
        self.explain_with_attributions(job, images, stats, call).await
    }

    /// Predictions and activations only: the forward graph, which is cheaper.
    async fn explain_forward(
        &self,
        job: ExplainJob,
        images: Array4<f32>,
        mut stats: Stats,
        call: &Call,
    ) -> Result<Explanation, ExplainError> {
        let mut outputs = vec![Output::Logits];
        for request in &job.feature_maps {
            let output = request.output();
            if !outputs.contains(&output) {
                outputs.push(output);
            }
        }
        let ran = self.run_batch(GraphKind::Forward, images, RowSettings::default(), outputs, call).await?;
        stats.add(&ran);
        let started = Instant::now();
        let prediction = prediction::predict(self.logits(&ran.outputs)?, job.top_k, job.target, job.objective);
        let tensors = self.feature_maps(&job.feature_maps, ran.outputs)?;
        stats.postprocess += started.elapsed();
        Ok(Explanation { prediction, tensors, pictures: Vec::new(), faithfulness: Vec::new(), stats })
    }

    /// Decodes and preprocesses the image on the compute pool; returns the tensor, and for
    /// encoded images the model view it was made from.
    async fn prepare(&self, image: ImageInput) -> Result<(Array4<f32>, Option<RgbImage>, Duration), ExplainError> {
        let started = Instant::now();
        let (images, view) = match image {
            ImageInput::Tensor(tensor) => (Arc::unwrap_or_clone(tensor), None),
            ImageInput::Encoded(bytes) => {
                let (limits, preprocessing) = (self.limits.image, self.info.preprocessing.clone());
                self.compute
                    .run("preprocessing", move || {
                        preprocess::prepare(&bytes, limits, &preprocessing).map(|(tensor, view)| (tensor, Some(view)))
                    })
                    .await??
            }
        };
        Ok((images, view, started.elapsed()))
    }

    async fn run_batch(
        &self,
        graph: GraphKind,
        images: Array4<f32>,
        settings: RowSettings,
        outputs: Vec<Output>,
        call: &Call,
    ) -> Result<Ran, ExplainError> {
        Ok(self.engine.run(Batch { graph, images, settings, outputs }, call.deadline, &call.permit).await?)
    }

    fn logits<'r>(&self, outputs: &'r Outputs) -> Result<ndarray::ArrayView1<'r, f32>, ExplainError> {
        let logits = output(outputs, Output::Logits)?;
        logits
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map(|logits| logits.index_axis_move(Axis(0), 0))
            .map_err(|e| ExplainError::Internal(format!("logits have shape {:?}: {e}", logits.shape())))
    }
}
