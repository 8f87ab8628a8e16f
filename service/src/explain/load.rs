//! Loading: read the model, build its forward graph and (from the cache, or by measuring every
//! tensor's shape and running the augmenter) its gradient graph, start ONNX Runtime on both, warm
//! them up (which also measures every layer's shape), read the labels, start the engine thread.
//! A model the augmenter refuses is still served without gradients, the reason kept for callers.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use ndarray::Array4;
use prost::Message;

use super::{
    Explainer, Limits,
    compute::ComputePool,
    info::{self, GradientSupport, LabelsError, ModelInfo},
};
use crate::{
    augment::{self, Backward, CROSS_ENTROPY_INPUT, GUIDED_INPUT, Shapes, TARGET_INPUT},
    engine::{
        self, Backend, BackendError, Batch, BatchPolicy, EngineHandle, GraphKind, GraphNames, LazyGraphs, OrtBackend,
        OrtOptions, Output, RowSettings,
    },
    metrics::Metrics,
    model::{GraphCache, Model, ModelError, ModelSource},
    preprocess::Preprocessing,
};

/// Everything loading needs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The model.
    pub model: ModelSource,
    /// A labels file, one label per line.
    pub labels: Option<PathBuf>,
    /// Input height and width, for graphs that leave them symbolic (and for safetensors weights).
    pub input_size: Option<u32>,
    /// Resize of the shorter side before the centre crop; `None` for 256/224 of the input size.
    pub resize_size: Option<u32>,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation standard deviation.
    pub std: [f32; 3],
    /// ONNX Runtime settings.
    pub ort: OrtOptions,
    /// Rows that may wait for the engine before requests are refused.
    pub queue_capacity: usize,
    /// Most rows in one engine run; `None` for the execution provider's default
    /// ([`BatchPolicy::default_max_batch_size`]).
    pub max_batch_size: Option<usize>,
    /// Longest the oldest waiting request is held back for others to join its run.
    pub max_queue_delay: Duration,
    /// Most sessions of graphs made on first use (a tail per Ablation-CAM layer, DeepLift's graph)
    /// held at once; making another drops the one run least recently.
    pub max_lazy_graphs: usize,
    /// Folder caching gradient graphs; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Bounds on requests.
    pub limits: Limits,
    /// Fail to load instead of serving without gradients when the model cannot be differentiated.
    pub require_gradients: bool,
    /// Threads for per-request CPU work (decoding, row filling, post-processing, rendering).
    pub compute_threads: usize,
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
    /// The model cannot be differentiated.
    #[error(transparent)]
    Augment(#[from] augment::AugmentError),
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

/// Every tensor's shape at batch 1, measured with one ONNX Runtime run of the forward graph.
pub fn measure_shapes(model: &Model, ort: &OrtOptions) -> Result<Shapes, LoadError> {
    let probe = model.probe_graph().encode_to_vec();
    let (height, width) = (model.input.height as usize, model.input.width as usize);
    Ok(engine::measure_shapes(ort, &probe, [1, 3, height, width])?)
}

/// Builds the graph of `model` whose backward pass ends at `from` (the input, or a layer tensor)
/// and computes `backward`.
pub fn build_gradient_graph(
    model: &Model,
    from: &str,
    backward: Backward,
    ort: &OrtOptions,
) -> Result<Vec<u8>, LoadError> {
    Ok(model.gradient_graph(&measure_shapes(model, ort)?, from, backward)?.encode_to_vec())
}

/// The graph from `from` computing `backward`, from the cache, or built (with `shapes`, measured
/// if still `None`) and cached.
fn cached_gradient_graph(
    model: &Model,
    cache: &GraphCache,
    from: &str,
    backward: Backward,
    shapes: &mut Option<Shapes>,
    ort: &OrtOptions,
) -> Result<Vec<u8>, LoadError> {
    let key = model.gradient_graph_key(from, backward);
    // A cached file that no longer decodes (a truncated disk, a foreign file) is rebuilt.
    if let Some(bytes) =
        cache.get(&key).filter(|bytes| explain_proto::onnx::ModelProto::decode(bytes.as_slice()).is_ok())
    {
        return Ok(bytes);
    }
    let shapes = match shapes {
        Some(shapes) => shapes,
        empty => empty.insert(measure_shapes(model, ort)?),
    };
    let bytes = model.gradient_graph(shapes, from, backward)?.encode_to_vec();
    cache.put(&key, &bytes);
    Ok(bytes)
}

/// The gradient graphs — down to the input, and for ResNets down to the head layer only — from
/// the cache, or built (shapes measured once) and cached.
fn gradient_graphs(model: &Model, options: &LoadOptions) -> Result<Vec<(GraphKind, Vec<u8>)>, LoadError> {
    let cache = GraphCache::new(options.cache_dir.clone());
    let mut starts = vec![(GraphKind::Gradient, model.input.name.clone())];
    starts.extend(model.head_layer().map(|head| (GraphKind::HeadGradient, head.tensor.clone())));
    let mut shapes: Option<Shapes> = None;
    starts
        .into_iter()
        .map(|(kind, from)| {
            let bytes = cached_gradient_graph(model, &cache, &from, Backward::Gradient, &mut shapes, &options.ort)?;
            Ok((kind, bytes))
        })
        .collect()
}

impl Explainer {
    /// Loads the model and starts its engine, counting its work in `metrics`. Blocking: call it
    /// off the async runtime.
    pub fn load(options: &LoadOptions, metrics: &Metrics) -> Result<Self, LoadError> {
        if options.std.iter().any(|s| !s.is_finite() || *s <= 0.0) || options.mean.iter().any(|m| !m.is_finite()) {
            return Err(LoadError::Setting(format!(
                "mean {:?} / std {:?} must be finite, std positive",
                options.mean, options.std
            )));
        }
        let model = Model::load(&options.model, options.input_size)?;
        tracing::info!(model = %model.name, sha256 = %model.sha256, layers = model.layers.layers.len(), "model read");
        let mut graphs = vec![(GraphKind::Forward, model.forward_graph().encode_to_vec())];
        let mut gradients = match gradient_graphs(&model, options) {
            Ok(gradient_graphs) => {
                graphs.extend(gradient_graphs);
                GradientSupport::Available
            }
            Err(LoadError::Augment(error)) => {
                tracing::error!(%error, "the model cannot be differentiated; serving predictions and activations only");
                GradientSupport::Unavailable(error.to_string())
            }
            Err(error) => return Err(error),
        };
        let named = &model.layers.layers;
        let names = GraphNames {
            logits: model.logits.clone(),
            input_gradient: augment::gradient_name(&model.input.name),
            layers: named.iter().map(|layer| (layer.tensor.clone(), augment::gradient_name(&layer.tensor))).collect(),
            row_inputs: [TARGET_INPUT, CROSS_ENTROPY_INPUT, GUIDED_INPUT].map(str::to_owned),
        };
        let mut backend = OrtBackend::new(&options.ort, &graphs, names)?;

        // Warm-up: one forward run at batch 1 fetching everything measures every layer's shape;
        // one gradient run proves the gradient graph runs.
        let (height, width) = (model.input.height, model.input.width);
        let zeros = || Array4::<f32>::zeros((1, 3, height as usize, width as usize));
        let outputs = std::iter::once(Output::Logits).chain((0..named.len()).map(Output::Activation)).collect();
        let settings = RowSettings::default();
        let warm = backend.run(&Batch { graph: GraphKind::Forward, images: zeros(), settings, outputs })?;
        let head = model.head_layer().and_then(|head| named.iter().position(|layer| layer.tensor == head.tensor));
        for (graph, output) in [
            (GraphKind::Gradient, Some(Output::InputGradient)),
            (GraphKind::HeadGradient, head.map(Output::LayerGradient)),
        ] {
            let (Some(output), GradientSupport::Available) = (output, &gradients) else { continue };
            let settings = RowSettings::new(0, false, &[false]);
            if let Err(error) = backend.run(&Batch { graph, images: zeros(), settings, outputs: vec![output] }) {
                tracing::error!(%error, ?graph, "a gradient graph does not run; serving predictions and activations only");
                gradients = GradientSupport::Unavailable(error.to_string());
            }
        }
        if let (true, Some(reason)) = (options.require_gradients, gradients.unavailable()) {
            return Err(LoadError::Setting(format!("gradients are required (--require-gradients): {reason}")));
        }
        let num_classes = match warm.get(&Output::Logits).map(|logits| logits.shape()) {
            Some([1, classes]) => *classes,
            other => {
                return Err(
                    ModelError::NotAClassifier(format!("logits have shape {other:?}, expected [1, classes]")).into()
                );
            }
        };
        let mut layers = info::layer_infos(named, &warm)?;
        for layer in layers.iter_mut().filter(|layer| layer.shape.len() == 3) {
            layer.tail_unavailable = model.check_tail(&layer.tensor).err().map(|error| error.to_string());
        }
        let labels = match (options.labels.as_deref(), model.labels) {
            (Some(path), _) => Some(info::read_labels(path, num_classes)?),
            (None, Some(shipped)) => Some(info::counted(shipped, Path::new("the model's own labels"), num_classes)?),
            (None, None) => None,
        };

        let preprocessing = Preprocessing {
            height,
            width,
            resize_size: options.resize_size.unwrap_or_else(|| Preprocessing::default_resize_size(height, width)),
            mean: options.mean,
            std: options.std,
        };
        let tail_shapes: Vec<(String, Vec<i64>)> = layers
            .iter()
            .map(|layer| (layer.tensor.clone(), layer.shape.iter().map(|&d| d as i64).collect()))
            .collect();
        let info = ModelInfo {
            name: model.name.clone(),
            sha256: model.sha256.clone(),
            input: model.input.clone(),
            preprocessing,
            logits: model.logits.clone(),
            layers,
            naming: model.layers.naming,
            num_classes,
            labels,
            execution_provider: backend.execution_provider().to_owned(),
            gradients,
            head_layer: head,
        };
        let batching = BatchPolicy {
            max_batch_size: options
                .max_batch_size
                .unwrap_or_else(|| BatchPolicy::default_max_batch_size(&info.execution_provider)),
            max_queue_delay: options.max_queue_delay,
        };
        tracing::info!(max_batch_size = batching.max_batch_size, "batching");
        // Tail graphs (Ablation-CAM's) and the DeepLift graph are made on first use from the model
        // read again, so that a server that never needs one does not keep the model's weights a
        // second time; the backend holds at most `max_lazy_graphs` of their sessions.
        let (source, input_size, sha256) = (options.model.clone(), options.input_size, model.sha256.clone());
        let (ort, cache_dir) = (options.ort.clone(), options.cache_dir.clone());
        let make: LazyGraphs = Box::new(move |graph| {
            let model = Model::load(&source, input_size).map_err(|error| error.to_string())?;
            if model.sha256 != sha256 {
                return Err("the model file changed since it was loaded; restart the server to serve it".into());
            }
            match graph {
                GraphKind::Tail(layer) => {
                    let (tensor, shape) =
                        tail_shapes.get(layer).ok_or_else(|| format!("the model has no layer {layer}"))?;
                    model
                        .tail_graph(tensor, shape)
                        .map(|graph| graph.encode_to_vec())
                        .map_err(|error| error.to_string())
                }
                GraphKind::DeepLift => {
                    let cache = GraphCache::new(cache_dir.clone());
                    cached_gradient_graph(&model, &cache, &model.input.name, Backward::DeepLift, &mut None, &ort)
                        .map_err(|error| error.to_string())
                }
                GraphKind::Forward | GraphKind::Gradient | GraphKind::HeadGradient => {
                    Err(format!("the {} graph is made at load", graph.name()))
                }
            }
        });
        let backend = backend.with_lazy_graphs(make, options.max_lazy_graphs, metrics.engine().clone());
        let engine = EngineHandle::spawn(backend, options.queue_capacity, batching, metrics.engine().clone())?;
        Ok(Self {
            info: Arc::new(info),
            engine,
            compute: ComputePool::new(options.compute_threads),
            limits: options.limits,
            batching,
            metrics: metrics.clone(),
        })
    }
}
