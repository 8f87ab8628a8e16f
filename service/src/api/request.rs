//! Validation of requests: protobuf messages in, domain jobs out, or an error naming the field.

use std::sync::Arc;

use explain_proto::{codec, v1 as pb};
use ndarray::Array4;

use crate::explain::{
    Attribution, Baseline, CamVariant, ChannelSelection, ClassifyJob, DEFAULT_BLUR_SIGMA, Encoding, ExplainJob,
    FaithfulnessSettings, FeatureMapRequest, ImageInput, LayerQuantity, Limits, ModelInfo, Objective, OcclusionWindows,
    RenderOptions, RiseMasks, Segments, SmoothGradVariant, TargetClass, WindowsError, engine_rows,
};
use explain_imaging::render::ColorMap;

/// Classes in a prediction when the request does not say.
const DEFAULT_TOP_K: usize = 5;
/// Most layer tensors one request may ask for.
pub const MAX_FEATURE_MAPS: usize = 64;
/// Most attribution maps one request may ask for.
pub const MAX_ATTRIBUTIONS: usize = 16;
/// Integrated Gradients steps when the request says 0 (Captum's default).
const DEFAULT_STEPS: usize = 50;
/// SmoothGrad samples when the request says 0.
const DEFAULT_SAMPLES: usize = 25;
/// SmoothGrad noise level when the request says 0.
const DEFAULT_NOISE_LEVEL: f32 = 0.15;
/// GradientSHAP draws when the request says 0 (Captum's default).
const DEFAULT_SHAP_SAMPLES: usize = 5;
/// Most baselines of GradientSHAP's distribution.
const MAX_SHAP_BASELINES: usize = 16;
/// Largest GradientSHAP noise σ, in input units.
const MAX_SHAP_STDEV: f32 = 100.0;
/// RISE masks when the request says 0.
const DEFAULT_RISE_MASKS: usize = 500;
/// RISE grid cells per side when the request says 0 (OpenVINO XAI's default).
const DEFAULT_RISE_CELLS: usize = 8;
/// RISE's probability of keeping a cell when the request says 0.
const DEFAULT_RISE_KEEP: f32 = 0.5;

/// Why a request was refused before any work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A field has a bad value.
    #[error("{field}: {description}")]
    Invalid {
        /// The field's path in the request, e.g. `feature_maps[1].layer`.
        field: String,
        /// What is wrong with it.
        description: String,
    },
    /// The request asks for something this server does not provide.
    #[error("{0}")]
    Unimplemented(String),
}

fn invalid(field: impl Into<String>, description: impl Into<String>) -> RequestError {
    RequestError::Invalid { field: field.into(), description: description.into() }
}

/// Validates a `Classify` request.
pub fn classify_job(request: pb::ClassifyRequest, info: &ModelInfo) -> Result<ClassifyJob, RequestError> {
    Ok(ClassifyJob { image: image(request.image, info)?, top_k: top_k(request.top_k, info) })
}

/// Validates an `Explain` request.
pub fn explain_job(request: pb::ExplainRequest, info: &ModelInfo, limits: &Limits) -> Result<ExplainJob, RequestError> {
    let image = image(request.image, info)?;
    if request.feature_maps.len() > MAX_FEATURE_MAPS {
        return Err(invalid(
            "feature_maps",
            format!("{} entries; at most {MAX_FEATURE_MAPS}", request.feature_maps.len()),
        ));
    }
    if request.attributions.len() > MAX_ATTRIBUTIONS {
        return Err(invalid(
            "attributions",
            format!("{} entries; at most {MAX_ATTRIBUTIONS}", request.attributions.len()),
        ));
    }
    let objective = objective(request.objective)?;
    let mut attributions: Vec<Attribution> = Vec::with_capacity(request.attributions.len());
    for (i, spec) in request.attributions.into_iter().enumerate() {
        let field = format!("attributions[{i}]");
        let attribution = attribution(spec, &field, info)?;
        if matches!(attribution, Attribution::DeepLift { .. }) && objective == Objective::CrossEntropy {
            let message = "DeepLift explains the target's logit: set objective to LOGIT, not CROSS_ENTROPY";
            return Err(invalid(format!("{field}.deep_lift"), message));
        }
        let name = attribution.output_name(info);
        if let Some(first) = attributions.iter().position(|earlier| earlier.output_name(info) == name) {
            return Err(invalid(field, format!("duplicates attributions[{first}] (both give `{name}`)")));
        }
        attributions.push(attribution);
    }
    let faithfulness = request.faithfulness.map(faithfulness).transpose()?;
    let rows = engine_rows(&attributions, faithfulness.as_ref());
    if rows > limits.max_rows_per_request {
        return Err(invalid(
            "attributions",
            format!(
                "need {rows} engine rows (steps, samples, windows, segments, masks, channels and faithfulness curves included); the limit is {}",
                limits.max_rows_per_request
            ),
        ));
    }
    let mut feature_maps = Vec::with_capacity(request.feature_maps.len());
    for (i, spec) in request.feature_maps.into_iter().enumerate() {
        let field = format!("feature_maps[{i}]");
        let feature_map = feature_map(spec, &field, info)?;
        // One tensor per layer and quantity: two channel selections of one layer would be sent
        // under one name.
        let name = feature_map.output_name(info);
        let same_tensor = |earlier: &FeatureMapRequest| earlier.output_name(info) == name;
        if let Some(first) = feature_maps.iter().position(same_tensor) {
            return Err(invalid(field, format!("duplicates feature_maps[{first}] (both give `{name}`)")));
        }
        feature_maps.push(feature_map);
    }
    Ok(ExplainJob {
        image,
        target: target(request.target, info)?,
        objective,
        attributions,
        feature_maps,
        encoding: encoding(request.encoding)?,
        render: render(request.render)?,
        top_k: top_k(request.top_k, info),
        faithfulness,
    })
}

/// Most points of a faithfulness curve.
const MAX_CURVE_STEPS: u32 = 64;

fn faithfulness(spec: pb::FaithfulnessSpec) -> Result<FaithfulnessSettings, RequestError> {
    let steps = match spec.steps {
        0 => 16,
        steps if steps <= MAX_CURVE_STEPS => steps as usize,
        steps => {
            return Err(invalid("faithfulness.steps", format!("{steps} is over the limit of {MAX_CURVE_STEPS}")));
        }
    };
    let blur_sigma = match spec.blur_sigma {
        0.0 => DEFAULT_BLUR_SIGMA,
        sigma if sigma.is_finite() && (0.0..=100.0).contains(&sigma) => sigma,
        sigma => return Err(invalid("faithfulness.blur_sigma", format!("{sigma} is not in (0, 100]"))),
    };
    Ok(FaithfulnessSettings { steps, blur_sigma })
}

/// Largest feature-map grid side.
const MAX_GRID: u32 = 64;

fn render(spec: Option<pb::RenderSpec>) -> Result<Option<RenderOptions>, RequestError> {
    let Some(spec) = spec.filter(|spec| spec.heatmaps || spec.feature_map_grids) else { return Ok(None) };
    let side = |value: u32, default: u32, field: &str| match value {
        0 => Ok(default),
        value if value <= MAX_GRID => Ok(value),
        value => Err(invalid(format!("render.{field}"), format!("{value} is more than {MAX_GRID}"))),
    };
    let alpha = match spec.alpha {
        0.0 => 0.5,
        alpha if alpha.is_finite() && alpha > 0.0 && alpha <= 1.0 => alpha,
        alpha => return Err(invalid("render.alpha", format!("{alpha} is not in (0, 1]"))),
    };
    let colormap = match pb::ColorMap::try_from(spec.color_map) {
        Ok(pb::ColorMap::Unspecified | pb::ColorMap::Viridis) => ColorMap::Viridis,
        Ok(pb::ColorMap::Inferno) => ColorMap::Inferno,
        Ok(pb::ColorMap::Gray) => ColorMap::Gray,
        Err(_) => return Err(invalid("render.color_map", format!("{} is not a ColorMap", spec.color_map))),
    };
    Ok(Some(RenderOptions {
        heatmaps: spec.heatmaps,
        grids: spec.feature_map_grids,
        columns: side(spec.grid_columns, 8, "grid_columns")?,
        rows: side(spec.grid_rows, 4, "grid_rows")?,
        colormap,
        alpha,
    }))
}

fn top_k(requested: u32, info: &ModelInfo) -> usize {
    match requested {
        0 => DEFAULT_TOP_K.min(info.num_classes),
        k => (k as usize).min(info.num_classes),
    }
}

fn image(image: Option<pb::Image>, info: &ModelInfo) -> Result<ImageInput, RequestError> {
    match image.and_then(|image| image.source) {
        None => Err(invalid("image", "is required: set image.encoded (PNG, JPEG, WebP, …) or image.tensor")),
        Some(pb::image::Source::Encoded(bytes)) if bytes.is_empty() => Err(invalid("image.encoded", "is empty")),
        Some(pb::image::Source::Encoded(bytes)) => Ok(ImageInput::Encoded(bytes)),
        Some(pb::image::Source::Tensor(tensor)) => {
            input_tensor(&tensor, "image.tensor", info).map(|tensor| ImageInput::Tensor(Arc::new(tensor)))
        }
    }
}

/// A FLOAT32 `[1, 3, H, W]` tensor at the model's input size.
fn input_tensor(tensor: &pb::Tensor, field: &str, info: &ModelInfo) -> Result<Array4<f32>, RequestError> {
    let dtype = pb::DataType::try_from(tensor.dtype)
        .map_err(|_| invalid(format!("{field}.dtype"), format!("{} is not a DataType; send FLOAT32", tensor.dtype)))?;
    if !matches!(dtype, pb::DataType::Unspecified | pb::DataType::Float32) {
        return Err(invalid(
            format!("{field}.dtype"),
            format!("{} is not accepted; send FLOAT32", dtype.as_str_name()),
        ));
    }
    let (h, w) = (info.input.height as i64, info.input.width as i64);
    if tensor.shape != [1, 3, h, w] {
        return Err(invalid(
            format!("{field}.shape"),
            format!("is {:?}; the model takes [1, 3, {h}, {w}]", tensor.shape),
        ));
    }
    let shape = [1, 3, h as usize, w as usize];
    let values = codec::decode(&tensor.data, &shape, pb::DataType::Float32, None).map_err(|_| {
        let expected = 3 * (h * w) as usize * 4;
        invalid(
            format!("{field}.data"),
            format!("has {} bytes; shape [1, 3, {h}, {w}] needs {expected}", tensor.data.len()),
        )
    })?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("{field}.data"), "contains NaN or infinity"));
    }
    Array4::from_shape_vec(shape, values).map_err(|e| invalid(format!("{field}.data"), e.to_string()))
}

fn target(target: Option<pb::Target>, info: &ModelInfo) -> Result<TargetClass, RequestError> {
    match target.and_then(|target| target.kind) {
        None => Ok(TargetClass::Predicted),
        Some(pb::target::Kind::ClassIndex(index)) if (index as usize) < info.num_classes => {
            Ok(TargetClass::Index(index as usize))
        }
        Some(pb::target::Kind::ClassIndex(index)) => Err(invalid(
            "target.class_index",
            format!("{index} is out of range; the model has {} classes", info.num_classes),
        )),
        Some(pb::target::Kind::Label(label)) => match info.labels.as_ref() {
            None => Err(invalid("target.label", "the model has no labels; give target.class_index")),
            Some(labels) => labels
                .iter()
                .position(|known| known == &label)
                .map(TargetClass::Index)
                .ok_or_else(|| invalid("target.label", format!("`{label}` is not one of the model's labels"))),
        },
    }
}

fn objective(objective: i32) -> Result<Objective, RequestError> {
    match pb::Objective::try_from(objective) {
        Ok(pb::Objective::Unspecified | pb::Objective::Logit) => Ok(Objective::Logit),
        Ok(pb::Objective::CrossEntropy) => Ok(Objective::CrossEntropy),
        Err(_) => Err(invalid("objective", format!("{objective} is not an Objective"))),
    }
}

fn encoding(encoding: i32) -> Result<Encoding, RequestError> {
    match pb::DataType::try_from(encoding) {
        Ok(pb::DataType::Unspecified | pb::DataType::Float32) => Ok(Encoding::Float32),
        Ok(pb::DataType::Float16) => Ok(Encoding::Float16),
        Ok(pb::DataType::Bfloat16) => Ok(Encoding::BFloat16),
        Ok(pb::DataType::Uint8) => Ok(Encoding::Uint8),
        Err(_) => Err(invalid("encoding", format!("{encoding} is not a DataType"))),
    }
}

fn feature_map(spec: pb::FeatureMapSpec, field: &str, info: &ModelInfo) -> Result<FeatureMapRequest, RequestError> {
    let Some((layer, layer_info)) = info.layer(&spec.layer) else {
        let what =
            if spec.layer.is_empty() { "is required".to_owned() } else { format!("`{}` is not a layer", spec.layer) };
        return Err(invalid(format!("{field}.layer"), format!("{what}; layers: {}", info.layer_names())));
    };
    let quantity = match pb::LayerQuantity::try_from(spec.quantity) {
        Ok(pb::LayerQuantity::Unspecified | pb::LayerQuantity::Activation) => LayerQuantity::Activation,
        Ok(pb::LayerQuantity::Gradient) => LayerQuantity::Gradient,
        Err(_) => {
            return Err(invalid(format!("{field}.quantity"), format!("{} is not a LayerQuantity", spec.quantity)));
        }
    };
    let channels = layer_info.channels();
    let channels = match spec.channels {
        None => ChannelSelection::All,
        Some(pb::feature_map_spec::Channels::TopK(0)) => {
            return Err(invalid(format!("{field}.top_k"), "must be at least 1"));
        }
        Some(pb::feature_map_spec::Channels::TopK(k)) => ChannelSelection::TopK((k as usize).min(channels)),
        Some(pb::feature_map_spec::Channels::ChannelList(list)) => {
            let field = format!("{field}.channel_list.indices");
            if list.indices.is_empty() {
                return Err(invalid(field, "is empty; leave channels unset for all channels"));
            }
            let mut seen = vec![false; channels];
            for (i, &index) in list.indices.iter().enumerate() {
                let index = index as usize;
                if index >= channels {
                    return Err(invalid(
                        format!("{field}[{i}]"),
                        format!("channel {index} is out of range; layer `{}` has {channels} channels", layer_info.name),
                    ));
                }
                if std::mem::replace(&mut seen[index], true) {
                    return Err(invalid(format!("{field}[{i}]"), format!("channel {index} is listed twice")));
                }
            }
            ChannelSelection::List(list.indices.iter().map(|&i| i as usize).collect())
        }
    };
    Ok(FeatureMapRequest { layer, channels, quantity })
}

/// The index of the spatial layer (`[C, h, w]`) a class activation map is taken at: `name`, or when
/// it is empty the last spatial layer with more than one position (not a pooled `[C, 1, 1]`), else
/// the last spatial layer.
fn spatial_layer(name: &str, field: &str, info: &ModelInfo) -> Result<usize, RequestError> {
    let spatial = |layer: &crate::explain::LayerInfo| layer.shape.len() == 3;
    if name.is_empty() {
        let map = |layer: &crate::explain::LayerInfo| spatial(layer) && layer.shape[1] * layer.shape[2] > 1;
        return info
            .layers
            .iter()
            .rposition(map)
            .or_else(|| info.layers.iter().rposition(spatial))
            .ok_or_else(|| invalid(field, "the model has no spatial layer"));
    }
    let (index, layer) = info
        .layer(name)
        .ok_or_else(|| invalid(field, format!("`{name}` is not a layer; layers: {}", info.layer_names())))?;
    if !spatial(layer) {
        return Err(invalid(
            field,
            format!("`{}` has shape {:?}; a class activation map needs [C, h, w]", layer.name, layer.shape),
        ));
    }
    Ok(index)
}

fn attribution(spec: pb::AttributionSpec, field: &str, info: &ModelInfo) -> Result<Attribution, RequestError> {
    use pb::attribution_spec::Method;
    Ok(match spec.method {
        None => {
            return Err(invalid(
                field,
                "set one method: saliency, input_x_gradient, grad_cam, guided_backprop, guided_grad_cam, integrated_gradients, smooth_grad, occlusion, score_cam, feature_ablation, gradient_shap, rise, ablation_cam or deep_lift",
            ));
        }
        Some(Method::Saliency(options)) => Attribution::Saliency { absolute: options.absolute },
        Some(Method::InputXGradient(_)) => Attribution::InputXGradient,
        Some(Method::GuidedBackprop(_)) => Attribution::GuidedBackprop,
        Some(Method::GradCam(options)) => {
            let layer = spatial_layer(&options.layer, &format!("{field}.grad_cam.layer"), info)?;
            let variant = match pb::CamVariant::try_from(options.variant) {
                Ok(pb::CamVariant::Unspecified | pb::CamVariant::GradCam) => CamVariant::GradCam,
                Ok(pb::CamVariant::GradCamPlusPlus) => CamVariant::GradCamPlusPlus,
                Ok(pb::CamVariant::XgradCam) => CamVariant::XGradCam,
                Ok(pb::CamVariant::HiresCam) => CamVariant::HiResCam,
                Ok(pb::CamVariant::LayerCam) => CamVariant::LayerCam,
                Ok(pb::CamVariant::EigenCam) => CamVariant::EigenCam,
                Ok(pb::CamVariant::EigenGradCam) => CamVariant::EigenGradCam,
                Err(_) => {
                    let message = format!("{} is not a CamVariant", options.variant);
                    return Err(invalid(format!("{field}.grad_cam.variant"), message));
                }
            };
            Attribution::GradCam { layer, upsample: options.upsample, variant }
        }
        Some(Method::GuidedGradCam(options)) => {
            let layer = spatial_layer(&options.layer, &format!("{field}.guided_grad_cam.layer"), info)?;
            Attribution::GuidedGradCam { layer }
        }
        Some(Method::IntegratedGradients(options)) => {
            let steps = match options.steps {
                0 => DEFAULT_STEPS,
                1 => return Err(invalid(format!("{field}.integrated_gradients.steps"), "must be at least 2")),
                steps => steps as usize,
            };
            let baseline = baseline(options.baseline, &format!("{field}.integrated_gradients.baseline"), info)?;
            Attribution::IntegratedGradients { steps, baseline }
        }
        Some(Method::DeepLift(options)) => {
            let baseline = baseline(options.baseline, &format!("{field}.deep_lift.baseline"), info)?;
            Attribution::DeepLift { baseline }
        }
        Some(Method::FeatureAblation(options)) => {
            let (height, width) = (info.input.height as usize, info.input.width as usize);
            let segments = Segments::new(&options.segment_ids, height, width).ok_or_else(|| {
                let message = format!(
                    "has {} values; the model's input has {height} × {width} = {} pixels",
                    options.segment_ids.len(),
                    height * width
                );
                invalid(format!("{field}.feature_ablation.segment_ids"), message)
            })?;
            let baseline = baseline(options.baseline, &format!("{field}.feature_ablation.baseline"), info)?;
            Attribution::FeatureAblation { segments, baseline }
        }
        Some(Method::ScoreCam(options)) => {
            let layer = spatial_layer(&options.layer, &format!("{field}.score_cam.layer"), info)?;
            Attribution::ScoreCam { layer, upsample: options.upsample, channels: info.layers[layer].shape[0] }
        }
        Some(Method::AblationCam(options)) => {
            let field = format!("{field}.ablation_cam.layer");
            let layer = spatial_layer(&options.layer, &field, info)?;
            if let Some(reason) = &info.layers[layer].tail_unavailable {
                let message = format!(
                    "Ablation-CAM needs a layer every path from the image to the logits passes through; `{}` is not: {reason}",
                    info.layers[layer].name
                );
                return Err(invalid(field, message));
            }
            Attribution::AblationCam { layer, upsample: options.upsample, channels: info.layers[layer].shape[0] }
        }
        Some(Method::Occlusion(options)) => {
            let (height, width) = (info.input.height as usize, info.input.width as usize);
            let side = match options.window as usize {
                0 => ((height.min(width) as f64 / 7.0).round() as usize).max(1),
                side => side,
            };
            let stride = match options.stride as usize {
                0 => (side / 2).max(1),
                stride => stride,
            };
            let windows = OcclusionWindows::new(side, stride, height, width).map_err(|error| match error {
                WindowsError::WindowOverInput => invalid(
                    format!("{field}.occlusion.window"),
                    format!("{side} is larger than the input ({height} × {width})"),
                ),
                WindowsError::StrideOverWindow => invalid(
                    format!("{field}.occlusion.stride"),
                    format!("{stride} is larger than the window ({side}); windows would skip pixels"),
                ),
            })?;
            let baseline = baseline(options.baseline, &format!("{field}.occlusion.baseline"), info)?;
            Attribution::Occlusion { windows, baseline }
        }
        Some(Method::SmoothGrad(options)) => {
            let noise_level = match options.noise_level {
                0.0 => DEFAULT_NOISE_LEVEL,
                level if level.is_finite() && (0.0..=10.0).contains(&level) => level,
                level => {
                    return Err(invalid(
                        format!("{field}.smooth_grad.noise_level"),
                        format!("{level} is not in (0, 10]"),
                    ));
                }
            };
            let variant = match pb::SmoothGradVariant::try_from(options.variant) {
                Ok(pb::SmoothGradVariant::Unspecified | pb::SmoothGradVariant::Mean) => SmoothGradVariant::Mean,
                Ok(pb::SmoothGradVariant::Squared) => SmoothGradVariant::Squared,
                Ok(pb::SmoothGradVariant::Variance) => SmoothGradVariant::Variance,
                Err(_) => {
                    let message = format!("{} is not a SmoothGradVariant", options.variant);
                    return Err(invalid(format!("{field}.smooth_grad.variant"), message));
                }
            };
            let samples = if options.samples == 0 { DEFAULT_SAMPLES } else { options.samples as usize };
            Attribution::SmoothGrad { samples, noise_level, seed: options.seed, variant }
        }
        Some(Method::GradientShap(options)) => {
            let field = format!("{field}.gradient_shap");
            if !(options.stdev.is_finite() && (0.0..=MAX_SHAP_STDEV).contains(&options.stdev)) {
                let message = format!("{} is not in [0, {MAX_SHAP_STDEV}]", options.stdev);
                return Err(invalid(format!("{field}.stdev"), message));
            }
            if options.baselines.len() > MAX_SHAP_BASELINES {
                let message = format!("{} baselines; at most {MAX_SHAP_BASELINES}", options.baselines.len());
                return Err(invalid(format!("{field}.baselines"), message));
            }
            let mut baselines = options
                .baselines
                .into_iter()
                .enumerate()
                .map(|(i, spec)| baseline(Some(spec), &format!("{field}.baselines[{i}]"), info))
                .collect::<Result<Vec<_>, _>>()?;
            if baselines.is_empty() {
                baselines.push(Baseline::Zeros);
            }
            let samples = if options.samples == 0 { DEFAULT_SHAP_SAMPLES } else { options.samples as usize };
            Attribution::GradientShap { samples, stdev: options.stdev, seed: options.seed, baselines }
        }
        Some(Method::Rise(options)) => {
            let field = format!("{field}.rise");
            let side = info.input.height.min(info.input.width) as usize;
            let cells = match options.cells as usize {
                0 => DEFAULT_RISE_CELLS.min(side),
                cells if cells <= side => cells,
                cells => {
                    let message = format!("{cells} cells per side; the input's shorter side has {side} pixels");
                    return Err(invalid(format!("{field}.cells"), message));
                }
            };
            let keep = match options.keep {
                0.0 => DEFAULT_RISE_KEEP,
                keep if keep.is_finite() && keep > 0.0 && keep <= 1.0 => keep,
                keep => return Err(invalid(format!("{field}.keep"), format!("{keep} is not in (0, 1]"))),
            };
            let count = if options.masks == 0 { DEFAULT_RISE_MASKS } else { options.masks as usize };
            Attribution::Rise(RiseMasks { count, cells, keep, seed: options.seed })
        }
    })
}

fn baseline(baseline: Option<pb::Baseline>, field: &str, info: &ModelInfo) -> Result<Baseline, RequestError> {
    use pb::baseline::Kind;
    Ok(match baseline.and_then(|baseline| baseline.kind) {
        None | Some(Kind::Zeros(_)) => Baseline::Zeros,
        Some(Kind::Black(_)) => Baseline::Black,
        Some(Kind::Blurred(options)) => match options.sigma {
            0.0 => Baseline::Blurred(DEFAULT_BLUR_SIGMA),
            sigma if sigma.is_finite() && (0.0..=100.0).contains(&sigma) => Baseline::Blurred(sigma),
            sigma => return Err(invalid(format!("{field}.blurred.sigma"), format!("{sigma} is not in (0, 100]"))),
        },
        Some(Kind::UniformNoise(options)) => Baseline::UniformNoise(options.seed),
        Some(Kind::Tensor(tensor)) => Baseline::Tensor(input_tensor(&tensor, &format!("{field}.tensor"), info)?),
    })
}
