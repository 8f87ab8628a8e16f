//! What the subcommands need to know about the served model: how it sees an image, and how each
//! attribution method of the command line becomes part of a request.

use explain_client::{
    ExplainBuilder,
    preprocess::{self, ImageLimits, Preprocessing},
    proto,
};

use super::args::{Method, MethodOptions};

type Failure = Box<dyn std::error::Error>;

/// The served model, as `GetModelInfo` describes it.
pub(crate) struct ServedModel {
    /// Its evaluation transform: resize, crop, mean and std.
    pub(crate) preprocessing: Preprocessing,
    /// Grad-CAM's layer: `--layer`, or empty for the server's default.
    pub(crate) cam_layer: String,
    /// Feature Ablation's segment ids, from `--segments`, when Feature Ablation is asked for.
    segments: Option<Vec<u32>>,
}

impl ServedModel {
    /// Reads the model's description for `methods`; `options.layer` overrides Grad-CAM's default
    /// layer, and Feature Ablation's segments are read from `options.segments`.
    pub(crate) fn new(
        info: &proto::GetModelInfoResponse,
        options: &MethodOptions,
        methods: &[Method],
    ) -> Result<Self, Failure> {
        let input = info.input.clone().unwrap_or_default();
        let (height, width) = match input.shape.as_slice() {
            [_, _, h, w] => (u32::try_from(*h)?, u32::try_from(*w)?),
            other => return Err(format!("the model's input shape {other:?} is not [N, 3, H, W]").into()),
        };
        let triple = |values: &[f32], what: &str| -> Result<[f32; 3], Failure> {
            values.try_into().map_err(|_| format!("the model's {what} {values:?} does not have 3 values").into())
        };
        let preprocessing = Preprocessing {
            height,
            width,
            resize_size: input.resize_size,
            mean: triple(&input.mean, "mean")?,
            std: triple(&input.std, "std")?,
        };
        // Empty: the server's default, its last spatial layer with more than one position.
        let cam_layer = options.layer.clone().unwrap_or_default();
        let segments = match (&options.segments, methods.contains(&Method::FeatureAblation)) {
            (_, false) => None,
            (None, true) => return Err("--method feature-ablation needs --segments FILE".into()),
            (Some(path), true) => {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let ids = preprocess::segment_ids(&bytes, ImageLimits::DEFAULT, &preprocessing)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Some(ids)
            }
        };
        Ok(Self { preprocessing, cam_layer, segments })
    }

    /// Adds `method` to `request`, with the settings of `options`.
    pub(crate) fn with_method(
        &self,
        request: ExplainBuilder,
        method: Method,
        options: &MethodOptions,
    ) -> ExplainBuilder {
        match method {
            Method::Saliency => request.saliency(),
            Method::InputXGradient => request.input_x_gradient(),
            Method::GradCam => request.grad_cam_upsampled(&self.cam_layer),
            Method::GradCamPlusPlus => request.cam(proto::CamVariant::GradCamPlusPlus, &self.cam_layer, true),
            Method::XgradCam => request.cam(proto::CamVariant::XgradCam, &self.cam_layer, true),
            Method::HiresCam => request.cam(proto::CamVariant::HiresCam, &self.cam_layer, true),
            Method::LayerCam => request.cam(proto::CamVariant::LayerCam, &self.cam_layer, true),
            Method::EigenCam => request.cam(proto::CamVariant::EigenCam, &self.cam_layer, true),
            Method::EigenGradCam => request.cam(proto::CamVariant::EigenGradCam, &self.cam_layer, true),
            Method::ScoreCam => request.score_cam(&self.cam_layer, true),
            Method::AblationCam => request.ablation_cam(&self.cam_layer, true),
            Method::GuidedBackprop => request.guided_backprop(),
            Method::GuidedGradCam => request.guided_grad_cam(&self.cam_layer),
            Method::IntegratedGradients => request.integrated_gradients_from(options.steps, options.baseline.kind()),
            Method::DeepLift => request.deep_lift_from(options.baseline.kind()),
            Method::SmoothGrad => request.smooth_grad(options.samples.unwrap_or(0), options.noise_level, options.seed),
            Method::Occlusion => request.occlusion(options.window, options.stride),
            Method::FeatureAblation => request.feature_ablation(self.segments.clone().unwrap_or_default()),
            Method::GradientShap => request.gradient_shap(options.samples.unwrap_or(0), options.stdev, options.seed),
            Method::Rise => request.rise(options.masks.unwrap_or(0), options.seed),
        }
    }
}
