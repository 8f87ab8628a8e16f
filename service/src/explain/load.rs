//! Loading: read the model, build its graphs, start ONNX Runtime, measure every layer's shape with
//! a warm-up run, read the labels, start the engine thread.

use std::{path::PathBuf, sync::Arc};

use ndarray::Array4;
use prost::Message;

use super::{
    Explainer,
    info::{self, LabelsError, ModelInfo},
};
use crate::{
    engine::{Backend, BackendError, Batch, EngineHandle, GraphKind, OrtBackend, OrtOptions},
    model::{Model, ModelError, ModelSource},
    preprocess::{ImageLimits, Preprocessing},
};

/// Everything loading needs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The model.
    pub model: ModelSource,
    /// A labels file, one label per line.
    pub labels: Option<PathBuf>,
    /// Input height and width, for graphs that leave them symbolic.
    pub input_size: Option<u32>,
    /// Resize of the shorter side before the centre crop; `None` for 256/224 of the input size.
    pub resize_size: Option<u32>,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation standard deviation.
    pub std: [f32; 3],
    /// ONNX Runtime settings.
    pub ort: OrtOptions,
    /// Batches that may wait for the engine.
    pub queue_capacity: usize,
    /// Bounds on images.
    pub image_limits: ImageLimits,
}

/// Why the service could not load its model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The model is unreadable or not a classifier.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// ONNX Runtime could not start or run the model.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The labels file does not fit the model.
    #[error(transparent)]
    Labels(#[from] LabelsError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The engine thread could not start.
    #[error("cannot start the engine thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Explainer {
    /// Loads the model and starts its engine. Blocking: call it off the async runtime.
    pub fn load(options: &LoadOptions) -> Result<Self, LoadError> {
        if options.std.iter().any(|s| !s.is_finite() || *s <= 0.0) || options.mean.iter().any(|m| !m.is_finite()) {
            return Err(LoadError::Setting(format!(
                "mean {:?} / std {:?} must be finite, std positive",
                options.mean, options.std
            )));
        }
        let model = Model::load(&options.model, options.input_size)?;
        tracing::info!(model = %model.name, sha256 = %model.sha256, layers = model.layers.layers.len(), "model read");
        let forward = model.forward_graph().encode_to_vec();
        let mut backend = OrtBackend::new(&options.ort, &[(GraphKind::Forward, forward)])?;

        // Warm-up: one run at batch 1 fetching everything measures every layer's shape.
        let (height, width) = (model.input.height, model.input.width);
        let mut outputs = vec![model.logits.clone()];
        outputs.extend(model.layers.layers.iter().map(|layer| layer.tensor.clone()));
        let images = Array4::<f32>::zeros((1, 3, height as usize, width as usize));
        let warm = backend.run(&Batch { graph: GraphKind::Forward, images, outputs })?;
        let shape_of = |tensor: &str| warm.get(tensor).map(|array| array.shape().to_vec());
        let num_classes = match shape_of(&model.logits).as_deref() {
            Some([1, classes]) => *classes,
            other => {
                return Err(
                    ModelError::NotAClassifier(format!("logits have shape {other:?}, expected [1, classes]")).into()
                );
            }
        };
        let layers = info::layer_infos(&model.layers.layers, shape_of);
        let labels = options.labels.as_deref().map(|path| info::read_labels(path, num_classes)).transpose()?;

        let preprocessing = Preprocessing {
            height,
            width,
            resize_size: options.resize_size.unwrap_or_else(|| Preprocessing::default_resize_size(height, width)),
            mean: options.mean,
            std: options.std,
        };
        let info = ModelInfo {
            name: model.name,
            sha256: model.sha256,
            input: model.input,
            preprocessing,
            logits: model.logits,
            layers,
            naming: model.layers.naming,
            num_classes,
            labels,
            execution_provider: backend.execution_provider().to_owned(),
        };
        let engine = EngineHandle::spawn(backend, options.queue_capacity)?;
        Ok(Self { info: Arc::new(info), engine, image_limits: options.image_limits })
    }
}
