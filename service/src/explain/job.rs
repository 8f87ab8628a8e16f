//! What a caller asked for, validated: the domain form of `ClassifyRequest` and `ExplainRequest`.

use std::sync::Arc;

use bytes::Bytes;
use explain_imaging::render::ColorMap;
use ndarray::Array4;

use crate::engine::Output;

/// The image of a request.
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// Encoded bytes, decoded and preprocessed by the service.
    Encoded(Bytes),
    /// A preprocessed `[1, 3, H, W]` tensor, used as is.
    Tensor(Arc<Array4<f32>>),
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

/// Which quantity of a layer to return.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerQuantity {
    /// The layer's output.
    #[default]
    Activation,
    /// The objective's gradient with respect to the layer's output.
    Gradient,
}

/// One layer tensor to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureMapRequest {
    /// Index of the layer in `ModelInfo::layers`.
    pub layer: usize,
    /// Channel selection.
    pub channels: ChannelSelection,
    /// Activation or gradient.
    pub quantity: LayerQuantity,
}

impl FeatureMapRequest {
    /// The engine output holding the requested layer tensor.
    pub fn output(&self) -> Output {
        match self.quantity {
            LayerQuantity::Activation => Output::Activation(self.layer),
            LayerQuantity::Gradient => Output::LayerGradient(self.layer),
        }
    }

    /// The name of the tensor this request is sent as: one per layer and quantity.
    pub fn output_name(&self, info: &super::ModelInfo) -> String {
        let prefix = match self.quantity {
            LayerQuantity::Activation => "activation",
            LayerQuantity::Gradient => "gradient",
        };
        format!("{prefix}/{}", info.layers[self.layer].name)
    }
}

/// Where Integrated Gradients starts its path.
#[derive(Clone, Debug, PartialEq)]
pub enum Baseline {
    /// Zeros in the normalised input space.
    Zeros,
    /// Pixel value 0, normalised.
    Black,
    /// The input blurred with a Gaussian of this σ (pixels).
    Blurred(f32),
    /// Uniform noise over pixel values [0, 1], normalised, from this seed.
    UniformNoise(u64),
    /// The caller's `[1, 3, H, W]` tensor.
    Tensor(Array4<f32>),
}

/// How SmoothGrad combines the noisy gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmoothGradVariant {
    /// Mean (SmoothGrad).
    #[default]
    Mean,
    /// Mean of squares (SmoothGrad²).
    Squared,
    /// Variance (VarGrad).
    Variance,
}

/// How a class activation map combines a layer's activations and gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CamVariant {
    /// Grad-CAM: channel weights are the gradient's spatial mean.
    #[default]
    GradCam,
    /// Grad-CAM++: channel weights from second- and third-order terms of the gradient.
    GradCamPlusPlus,
    /// XGrad-CAM: channel weights are the activation-weighted mean gradient.
    XGradCam,
    /// HiResCAM: the elementwise product of gradient and activation, summed over channels.
    HiResCam,
    /// LayerCAM: the elementwise product of the positive gradient and the activation.
    LayerCam,
    /// EigenCAM: the activations' projection on their first principal component.
    EigenCam,
    /// EigenGradCAM: the projection of gradient ⊙ activation on its first principal component.
    EigenGradCam,
}

impl CamVariant {
    /// Its name in tensor names and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::GradCam => "grad_cam",
            Self::GradCamPlusPlus => "grad_cam_plus_plus",
            Self::XGradCam => "xgrad_cam",
            Self::HiResCam => "hires_cam",
            Self::LayerCam => "layer_cam",
            Self::EigenCam => "eigen_cam",
            Self::EigenGradCam => "eigen_grad_cam",
        }
    }
}

/// Square occlusion windows over a `height × width` input, validated: `1 ≤ stride ≤ side ≤
/// min(height, width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcclusionWindows {
    /// The window's side.
    pub side: usize,
    /// The step between windows.
    pub stride: usize,
    /// Window positions down the input.
    pub rows: usize,
    /// Window positions across the input.
    pub columns: usize,
}

/// Why occlusion windows do not fit an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowsError {
    /// The window is larger than the input's shorter side.
    WindowOverInput,
    /// The stride is 0 or larger than the window (windows would skip pixels).
    StrideOverWindow,
}

impl OcclusionWindows {
    /// Windows of `side` stepping by `stride` over `height × width` as Captum places them
    /// (`⌈(extent − side) / stride⌉ + 1` positions per axis), if `1 ≤ stride ≤ side ≤
    /// min(height, width)`.
    pub fn new(side: usize, stride: usize, height: usize, width: usize) -> Result<Self, WindowsError> {
        if side > height.min(width) {
            return Err(WindowsError::WindowOverInput);
        }
        if stride == 0 || stride > side {
            return Err(WindowsError::StrideOverWindow);
        }
        let positions = |extent: usize| (extent - side).div_ceil(stride) + 1;
        Ok(Self { side, stride, rows: positions(height), columns: positions(width) })
    }

    /// Number of windows (one engine row each).
    pub fn count(&self) -> usize {
        self.rows * self.columns
    }

    /// The pixel rows and columns window `index` covers (row-major order), cut at the edge.
    pub fn window(
        &self,
        index: usize,
        height: usize,
        width: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (top, left) = ((index / self.columns) * self.stride, (index % self.columns) * self.stride);
        (top..(top + self.side).min(height), left..(left + self.side).min(width))
    }
}

/// Every attribution method by its name in `AttributionSpec.method`, and whether it needs the
/// gradient graph.
pub const METHODS: [(&str, bool); 14] = [
    ("saliency", true),
    ("input_x_gradient", true),
    ("grad_cam", true),
    ("guided_backprop", true),
    ("integrated_gradients", true),
    ("smooth_grad", true),
    ("guided_grad_cam", true),
    ("occlusion", false),
    ("score_cam", false),
    ("feature_ablation", false),
    ("gradient_shap", true),
    ("rise", false),
    ("ablation_cam", false),
    ("deep_lift", true),
];

/// The caller's segments of the input's pixels, validated: `index[[y, x]]` numbers the segment of
/// each pixel `0..count`, every number used.
#[derive(Clone, Debug, PartialEq)]
pub struct Segments {
    /// The segment of each pixel, `[height, width]`.
    pub index: std::sync::Arc<ndarray::Array2<u32>>,
    /// Number of segments.
    pub count: usize,
}

impl Segments {
    /// Segments from the caller's `ids` (row-major, `height × width` of them): each distinct id is
    /// one segment, numbered in increasing order of id. `None` unless there are `height × width`.
    pub fn new(ids: &[u32], height: usize, width: usize) -> Option<Self> {
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let numbered = ids.iter().map(|id| distinct.binary_search(id).unwrap_or_default() as u32).collect();
        let index = ndarray::Array2::from_shape_vec((height, width), numbered).ok()?;
        Some(Self { index: std::sync::Arc::new(index), count: distinct.len() })
    }
}

/// One attribution method with its options, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribution {
    /// The input gradient, signed or absolute.
    Saliency {
        /// |gradient| instead of the gradient.
        absolute: bool,
    },
    /// Input ⊙ gradient.
    InputXGradient,
    /// Grad-CAM, or one of its relatives, at a layer.
    GradCam {
        /// Index of the layer in `ModelInfo::layers` (a spatial layer).
        layer: usize,
        /// Bilinear upsampling to the input size.
        upsample: bool,
        /// How activations and gradients are combined.
        variant: CamVariant,
    },
    /// Guided backpropagation.
    GuidedBackprop,
    /// Guided backpropagation times the layer's Grad-CAM map, upsampled by nearest neighbour.
    GuidedGradCam {
        /// Index of the layer in `ModelInfo::layers` (a spatial layer).
        layer: usize,
    },
    /// Integrated Gradients, trapezoid rule.
    IntegratedGradients {
        /// Points on the path (≥ 2).
        steps: usize,
        /// The path's start.
        baseline: Baseline,
    },
    /// Occlusion: one forward row per window position.
    Occlusion {
        /// The geometry of the windows.
        windows: OcclusionWindows,
        /// What occluded pixels become.
        baseline: Baseline,
    },
    /// Feature Ablation: one forward row per segment.
    FeatureAblation {
        /// The segments.
        segments: Segments,
        /// What ablated pixels become.
        baseline: Baseline,
    },
    /// Score-CAM: one forward row per channel of the layer.
    ScoreCam {
        /// Index of the layer in `ModelInfo::layers` (a spatial layer).
        layer: usize,
        /// Bilinear upsampling to the input size.
        upsample: bool,
        /// The layer's channels (its rows).
        channels: usize,
    },
    /// GradientSHAP: gradients at random points between noisy inputs and random baselines.
    GradientShap {
        /// Draws (rows).
        samples: usize,
        /// σ of the noise added to the input, in input units.
        stdev: f32,
        /// Seed of the draws.
        seed: u64,
        /// The baseline distribution (at least one).
        baselines: Vec<Baseline>,
    },
    /// RISE: one forward row per random mask.
    Rise(RiseMasks),
    /// Ablation-CAM: one row per channel of the layer, through the layer's tail graph.
    AblationCam {
        /// Index of the layer in `ModelInfo::layers` (a spatial layer with a tail graph).
        layer: usize,
        /// Bilinear upsampling to the input size.
        upsample: bool,
        /// The layer's channels (its rows).
        channels: usize,
    },
    /// DeepLift (rescale rule): the input and its reference as a pair of rows of the DeepLift graph.
    DeepLift {
        /// The reference input.
        baseline: Baseline,
    },
    /// SmoothGrad and its variants.
    SmoothGrad {
        /// Noisy copies.
        samples: usize,
        /// σ as a fraction of the input's range.
        noise_level: f32,
        /// Noise seed.
        seed: u64,
        /// How gradients are combined.
        variant: SmoothGradVariant,
    },
}

/// RISE's random masks, validated: `1 ≤ cells ≤ min(height, width)`, `0 < keep ≤ 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiseMasks {
    /// Number of masks (rows).
    pub count: usize,
    /// Cells per side of a mask's grid.
    pub cells: usize,
    /// Probability that a cell is kept.
    pub keep: f32,
    /// Seed of the masks.
    pub seed: u64,
}

/// Pictures the server draws of a job's tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderOptions {
    /// Attribution maps as heatmaps over the image.
    pub heatmaps: bool,
    /// Layer tensors as grids of feature maps.
    pub grids: bool,
    /// Grid columns.
    pub columns: u32,
    /// Grid rows.
    pub rows: u32,
    /// Colour map of heatmaps.
    pub colormap: ColorMap,
    /// Opacity of heatmaps.
    pub alpha: f32,
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
    /// Attribution maps to compute, in request order.
    pub attributions: Vec<Attribution>,
    /// Layer tensors to return, in request order.
    pub feature_maps: Vec<FeatureMapRequest>,
    /// Encoding of the returned tensors.
    pub encoding: Encoding,
    /// Pictures to draw of the tensors, if any.
    pub render: Option<RenderOptions>,
    /// Number of classes in the prediction.
    pub top_k: usize,
    /// How to score each attribution's faithfulness, if at all.
    pub faithfulness: Option<FaithfulnessSettings>,
}

/// How attributions' faithfulness is scored, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaithfulnessSettings {
    /// Points of each curve after the unchanged image (1 to 64).
    pub steps: usize,
    /// σ of the blur insertion starts from, in input pixels.
    pub blur_sigma: f32,
}

impl FaithfulnessSettings {
    /// Forward rows it takes per attribution: two curves of `steps + 1` points.
    pub fn rows_per_attribution(&self) -> usize {
        2 * (self.steps + 1)
    }
}

impl ExplainJob {
    /// Whether the job needs the gradient graph.
    pub fn needs_gradients(&self) -> bool {
        self.attributions.iter().any(Attribution::needs_gradients)
            || self.feature_maps.iter().any(|f| f.quantity == LayerQuantity::Gradient)
    }

    /// Engine rows the job puts through the engine.
    pub fn rows(&self) -> usize {
        engine_rows(&self.attributions, self.faithfulness.as_ref())
    }
}

/// Engine rows of a job with these attributions: the image's own row, its guided row once however
/// many methods share it, the extra rows of the path and perturbation methods, and the rows that
/// score each attribution's faithfulness.
pub fn engine_rows(attributions: &[Attribution], faithfulness: Option<&FaithfulnessSettings>) -> usize {
    let guided = attributions.iter().filter(|attribution| attribution.uses_guided_row()).count();
    let scoring = faithfulness.map_or(0, |settings| attributions.len() * settings.rows_per_attribution());
    1 + attributions.iter().map(Attribution::extra_rows).sum::<usize>() - guided.saturating_sub(1) + scoring
}

impl Attribution {
    /// The name of the tensor this attribution is sent as.
    pub fn output_name(&self, info: &super::ModelInfo) -> String {
        match self {
            Self::Saliency { absolute: false } => "attribution/saliency".into(),
            Self::Saliency { absolute: true } => "attribution/saliency_abs".into(),
            Self::InputXGradient => "attribution/input_x_gradient".into(),
            Self::GradCam { layer, upsample, variant } => {
                let suffix = if *upsample { "/upsampled" } else { "" };
                format!("attribution/{}/{}{suffix}", variant.name(), info.layers[*layer].name)
            }
            Self::GuidedBackprop => "attribution/guided_backprop".into(),
            Self::GuidedGradCam { layer } => format!("attribution/guided_grad_cam/{}", info.layers[*layer].name),
            Self::IntegratedGradients { .. } => "attribution/integrated_gradients".into(),
            Self::Occlusion { .. } => "attribution/occlusion".into(),
            Self::FeatureAblation { .. } => "attribution/feature_ablation".into(),
            Self::GradientShap { .. } => "attribution/gradient_shap".into(),
            Self::DeepLift { .. } => "attribution/deep_lift".into(),
            Self::Rise(_) => "attribution/rise".into(),
            Self::AblationCam { layer, upsample, .. } => {
                let suffix = if *upsample { "/upsampled" } else { "" };
                format!("attribution/ablation_cam/{}{suffix}", info.layers[*layer].name)
            }
            Self::ScoreCam { layer, upsample, .. } => {
                let suffix = if *upsample { "/upsampled" } else { "" };
                format!("attribution/score_cam/{}{suffix}", info.layers[*layer].name)
            }
            Self::SmoothGrad { variant: SmoothGradVariant::Mean, .. } => "attribution/smooth_grad".into(),
            Self::SmoothGrad { variant: SmoothGradVariant::Squared, .. } => "attribution/smooth_grad_squared".into(),
            Self::SmoothGrad { variant: SmoothGradVariant::Variance, .. } => "attribution/smooth_grad_variance".into(),
        }
    }

    /// The method's name in metrics.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Saliency { .. } => "saliency",
            Self::InputXGradient => "input_x_gradient",
            Self::GradCam { variant, .. } => variant.name(),
            Self::GuidedBackprop => "guided_backprop",
            Self::GuidedGradCam { .. } => "guided_grad_cam",
            Self::IntegratedGradients { .. } => "integrated_gradients",
            Self::Occlusion { .. } => "occlusion",
            Self::FeatureAblation { .. } => "feature_ablation",
            Self::GradientShap { .. } => "gradient_shap",
            Self::DeepLift { .. } => "deep_lift",
            Self::Rise(_) => "rise",
            Self::AblationCam { .. } => "ablation_cam",
            Self::ScoreCam { .. } => "score_cam",
            Self::SmoothGrad { .. } => "smooth_grad",
        }
    }

    /// Whether the attribution needs the gradient graph (every method but the perturbation ones:
    /// Occlusion, Feature Ablation, Score-CAM, RISE and Ablation-CAM).
    pub fn needs_gradients(&self) -> bool {
        !matches!(
            self,
            Self::Occlusion { .. }
                | Self::FeatureAblation { .. }
                | Self::ScoreCam { .. }
                | Self::Rise(_)
                | Self::AblationCam { .. }
        )
    }

    /// Whether the attribution needs the image's guided row (guided backpropagation).
    pub fn uses_guided_row(&self) -> bool {
        matches!(self, Self::GuidedBackprop | Self::GuidedGradCam { .. })
    }

    /// Rows this attribution adds to the image's own run (a guided row is shared by every method
    /// that uses it).
    pub fn extra_rows(&self) -> usize {
        match self {
            Self::Saliency { .. } | Self::InputXGradient | Self::GradCam { .. } => 0,
            Self::GuidedBackprop | Self::GuidedGradCam { .. } => 1,
            Self::IntegratedGradients { steps, .. } => *steps,
            Self::DeepLift { .. } => 2,
            Self::Occlusion { windows, .. } => windows.count(),
            Self::FeatureAblation { segments, .. } => segments.count,
            Self::ScoreCam { channels, .. } | Self::AblationCam { channels, .. } => *channels,
            Self::SmoothGrad { samples, .. } | Self::GradientShap { samples, .. } => *samples,
            Self::Rise(masks) => masks.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guided_methods_share_one_guided_row() {
        let guided_grad_cam = Attribution::GuidedGradCam { layer: 0 };
        assert_eq!(engine_rows(&[], None), 1);
        assert_eq!(engine_rows(&[Attribution::GuidedBackprop], None), 2);
        assert_eq!(engine_rows(&[Attribution::GuidedBackprop, guided_grad_cam.clone()], None), 2);
        let smooth_grad =
            Attribution::SmoothGrad { samples: 5, noise_level: 0.1, seed: 0, variant: SmoothGradVariant::Mean };
        let attributions = [guided_grad_cam, Attribution::InputXGradient, smooth_grad];
        assert_eq!(engine_rows(&attributions, None), 7);
        // Scoring three maps with 16-step curves: 3 × 34 rows more.
        let scoring = FaithfulnessSettings { steps: 16, blur_sigma: 5.0 };
        assert_eq!(engine_rows(&attributions, Some(&scoring)), 7 + 3 * 34);
    }

    /// An attribution of the method called `name` in `AttributionSpec`.
    fn example(name: &str) -> Attribution {
        let windows = OcclusionWindows::new(2, 1, 4, 4).unwrap();
        let segments = Segments::new(&[0; 16], 4, 4).unwrap();
        let masks = RiseMasks { count: 2, cells: 2, keep: 0.5, seed: 0 };
        match name {
            "saliency" => Attribution::Saliency { absolute: false },
            "input_x_gradient" => Attribution::InputXGradient,
            "grad_cam" => Attribution::GradCam { layer: 0, upsample: false, variant: CamVariant::GradCam },
            "guided_backprop" => Attribution::GuidedBackprop,
            "integrated_gradients" => Attribution::IntegratedGradients { steps: 2, baseline: Baseline::Zeros },
            "smooth_grad" => {
                Attribution::SmoothGrad { samples: 1, noise_level: 0.1, seed: 0, variant: SmoothGradVariant::Mean }
            }
            "guided_grad_cam" => Attribution::GuidedGradCam { layer: 0 },
            "occlusion" => Attribution::Occlusion { windows, baseline: Baseline::Zeros },
            "score_cam" => Attribution::ScoreCam { layer: 0, upsample: false, channels: 1 },
            "feature_ablation" => Attribution::FeatureAblation { segments, baseline: Baseline::Zeros },
            "gradient_shap" => Attribution::GradientShap { samples: 1, stdev: 0.0, seed: 0, baselines: Vec::new() },
            "rise" => Attribution::Rise(masks),
            "ablation_cam" => Attribution::AblationCam { layer: 0, upsample: false, channels: 1 },
            "deep_lift" => Attribution::DeepLift { baseline: Baseline::Zeros },
            other => panic!("no example of `{other}`: add one"),
        }
    }

    #[test]
    fn the_method_list_says_which_methods_need_gradients() {
        for (name, needs_gradients) in METHODS {
            let attribution = example(name);
            assert_eq!(attribution.method(), name);
            assert_eq!(attribution.needs_gradients(), needs_gradients, "{name}");
        }
    }

    #[test]
    fn segment_ids_are_numbered_in_increasing_order() {
        let segments = Segments::new(&[70, 3, 3, 9, 70, 9], 2, 3).unwrap();
        assert_eq!(segments.count, 3);
        assert_eq!(*segments.index, ndarray::array![[2_u32, 0, 0], [1, 2, 1]]);
        assert_eq!(Segments::new(&[1, 2, 3], 2, 2), None, "three ids for four pixels");
    }

    #[test]
    fn occlusion_windows_are_placed_as_captum_places_them() {
        // 64 wide, window 12, stride 5: ⌈52 / 5⌉ + 1 = 12 positions, the last at 55, cut to 55..64.
        let windows = OcclusionWindows::new(12, 5, 64, 64).unwrap();
        assert_eq!((windows.rows, windows.columns, windows.count()), (12, 12, 144));
        assert_eq!(windows.window(0, 64, 64), (0..12, 0..12));
        assert_eq!(windows.window(13, 64, 64), (5..17, 5..17));
        assert_eq!(windows.window(143, 64, 64), (55..64, 55..64));
        // As tall as the input: one position down; 16 more columns across: a second, cut, window.
        assert_eq!(OcclusionWindows::new(64, 64, 64, 80).map(|w| (w.rows, w.columns)), Ok((1, 2)));
        assert_eq!(OcclusionWindows::new(8, 0, 64, 64), Err(WindowsError::StrideOverWindow), "stride 0");
        assert_eq!(OcclusionWindows::new(8, 9, 64, 64), Err(WindowsError::StrideOverWindow));
        assert_eq!(OcclusionWindows::new(65, 4, 64, 80), Err(WindowsError::WindowOverInput));
    }
}
