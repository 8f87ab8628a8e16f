//! The request builder: `client.explain(image).saliency().grad_cam("layer4.1")
//! .feature_maps("layer2.1").send().await`.

use crate::{Client, Error, Explanation, ImageInput, proto};
use proto::attribution_spec::Method;

/// An explanation being put together; see [`Client::explain`].
#[derive(Clone, Debug)]
#[must_use = "an explanation does nothing until it is sent"]
pub struct ExplainBuilder {
    client: Client,
    request: proto::ExplainRequest,
}

impl ExplainBuilder {
    pub(crate) fn new(client: Client, image: ImageInput) -> Self {
        Self { client, request: proto::ExplainRequest { image: Some(image.0), ..Default::default() } }
    }

    fn attribution(mut self, method: Method) -> Self {
        self.request.attributions.push(proto::AttributionSpec { method: Some(method) });
        self
    }

    fn layer(
        mut self,
        layer: &str,
        channels: Option<proto::feature_map_spec::Channels>,
        quantity: proto::LayerQuantity,
    ) -> Self {
        self.request.feature_maps.push(proto::FeatureMapSpec {
            layer: layer.to_owned(),
            channels,
            quantity: quantity as i32,
        });
        self
    }

    /// Explains class `index` (default: the predicted class).
    pub fn target(mut self, index: u32) -> Self {
        self.request.target = Some(proto::Target { kind: Some(proto::target::Kind::ClassIndex(index)) });
        self
    }

    /// Explains the class with this label.
    pub fn target_label(mut self, label: impl Into<String>) -> Self {
        self.request.target = Some(proto::Target { kind: Some(proto::target::Kind::Label(label.into())) });
        self
    }

    /// Differentiates the image's cross-entropy loss instead of the target logit.
    pub fn cross_entropy(mut self) -> Self {
        self.request.objective = proto::Objective::CrossEntropy as i32;
        self
    }

    /// The input gradient: `attribution/saliency`.
    pub fn saliency(self) -> Self {
        self.attribution(Method::Saliency(proto::Saliency { absolute: false }))
    }

    /// |input gradient|: `attribution/saliency_abs`.
    pub fn saliency_abs(self) -> Self {
        self.attribution(Method::Saliency(proto::Saliency { absolute: true }))
    }

    /// Input × gradient: `attribution/input_x_gradient`.
    pub fn input_x_gradient(self) -> Self {
        self.attribution(Method::InputXGradient(proto::InputXGradient {}))
    }

    /// Grad-CAM at `layer`, at the layer's size: `attribution/grad_cam/<layer>`.
    pub fn grad_cam(self, layer: &str) -> Self {
        self.cam(proto::CamVariant::GradCam, layer, false)
    }

    /// Grad-CAM at `layer` upsampled to the input: `attribution/grad_cam/<layer>/upsampled`.
    pub fn grad_cam_upsampled(self, layer: &str) -> Self {
        self.cam(proto::CamVariant::GradCam, layer, true)
    }

    /// A class activation map of `variant` (Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM,
    /// EigenCAM, EigenGradCAM) at `layer`, upsampled to the input or not:
    /// `attribution/<variant>/<layer>[/upsampled]`, e.g.
    /// `attribution/grad_cam_plus_plus/layer4.1/upsampled`.
    pub fn cam(self, variant: proto::CamVariant, layer: &str, upsample: bool) -> Self {
        self.attribution(Method::GradCam(proto::GradCam { layer: layer.to_owned(), upsample, variant: variant as i32 }))
    }

    /// Score-CAM at `layer` (one forward row per channel, no gradient), upsampled to the input or
    /// not: `attribution/score_cam/<layer>[/upsampled]`.
    pub fn score_cam(self, layer: &str, upsample: bool) -> Self {
        self.attribution(Method::ScoreCam(proto::ScoreCam { layer: layer.to_owned(), upsample }))
    }

    /// Ablation-CAM at `layer` (one row per channel through the rest of the network, no gradient),
    /// upsampled to the input or not: `attribution/ablation_cam/<layer>[/upsampled]`.
    pub fn ablation_cam(self, layer: &str, upsample: bool) -> Self {
        self.attribution(Method::AblationCam(proto::AblationCam { layer: layer.to_owned(), upsample }))
    }

    /// Guided backpropagation: `attribution/guided_backprop`.
    pub fn guided_backprop(self) -> Self {
        self.attribution(Method::GuidedBackprop(proto::GuidedBackprop {}))
    }

    /// Guided Grad-CAM at `layer` (guided backpropagation × Grad-CAM, as Captum's `GuidedGradCam`):
    /// `attribution/guided_grad_cam/<layer>`.
    pub fn guided_grad_cam(self, layer: &str) -> Self {
        self.attribution(Method::GuidedGradCam(proto::GuidedGradCam { layer: layer.to_owned() }))
    }

    /// Occlusion (Captum's `Occlusion`) with square windows of `window` pixels stepping by `stride`
    /// (0: the server's defaults, a seventh of the input's side and half the window), filled with
    /// zeros: `attribution/occlusion`. One forward row per window.
    pub fn occlusion(self, window: u32, stride: u32) -> Self {
        self.attribution(Method::Occlusion(proto::Occlusion { window, stride, baseline: None }))
    }

    /// Feature Ablation (Captum's `FeatureAblation`) over the caller's segments: `segment_ids` has
    /// one id per pixel of the model's input (row-major, after resizing and cropping; each distinct
    /// id a segment), ablated to zeros: `attribution/feature_ablation`. One forward row per segment.
    pub fn feature_ablation(self, segment_ids: Vec<u32>) -> Self {
        self.attribution(Method::FeatureAblation(proto::FeatureAblation { segment_ids, baseline: None }))
    }

    /// Integrated Gradients from a zero baseline in `steps` points (0: 50).
    pub fn integrated_gradients(self, steps: u32) -> Self {
        self.attribution(Method::IntegratedGradients(proto::IntegratedGradients { steps, baseline: None }))
    }

    /// Integrated Gradients from `baseline`.
    pub fn integrated_gradients_from(self, steps: u32, baseline: proto::baseline::Kind) -> Self {
        let baseline = Some(proto::Baseline { kind: Some(baseline) });
        self.attribution(Method::IntegratedGradients(proto::IntegratedGradients { steps, baseline }))
    }

    /// SmoothGrad over `samples` noisy copies with σ = `noise_level` × the input range, seeded.
    pub fn smooth_grad(self, samples: u32, noise_level: f32, seed: u64) -> Self {
        self.attribution(Method::SmoothGrad(proto::SmoothGrad { samples, noise_level, seed, variant: 0 }))
    }

    /// GradientSHAP (Captum's `GradientShap`) over `samples` draws (0: 5) from a zero baseline,
    /// with input noise of σ = `stdev` in input units (0: none), seeded:
    /// `attribution/gradient_shap`. One gradient row per draw.
    pub fn gradient_shap(self, samples: u32, stdev: f32, seed: u64) -> Self {
        self.attribution(Method::GradientShap(proto::GradientShap { samples, stdev, seed, baselines: Vec::new() }))
    }

    /// RISE over `masks` random masks (0: 500) of 8 × 8 cells kept with probability ½, seeded:
    /// `attribution/rise`, `[1, 1, H, W]`. One forward row per mask.
    pub fn rise(self, masks: u32, seed: u64) -> Self {
        self.attribution(Method::Rise(proto::Rise { masks, cells: 0, keep: 0.0, seed }))
    }

    /// DeepLift with the rescale rule (Captum's `DeepLift`) from a zero baseline:
    /// `attribution/deep_lift` and its convergence delta `attribution/deep_lift/delta`. Two engine
    /// rows, the input and the baseline, through the model's DeepLift graph.
    pub fn deep_lift(self) -> Self {
        self.attribution(Method::DeepLift(proto::DeepLift { baseline: None }))
    }

    /// DeepLift from `baseline`.
    pub fn deep_lift_from(self, baseline: proto::baseline::Kind) -> Self {
        let baseline = Some(proto::Baseline { kind: Some(baseline) });
        self.attribution(Method::DeepLift(proto::DeepLift { baseline }))
    }

    /// Any attribution, with every option.
    pub fn with_attribution(mut self, spec: proto::AttributionSpec) -> Self {
        self.request.attributions.push(spec);
        self
    }

    /// Also score how faithful each attribution map is: deletion and insertion curves of `steps`
    /// steps (0: 16), 2 × (steps + 1) forward rows per map, in [`Explanation::faithfulness`].
    ///
    /// [`Explanation::faithfulness`]: crate::Explanation::faithfulness
    pub fn faithfulness(mut self, steps: u32) -> Self {
        self.request.faithfulness = Some(proto::FaithfulnessSpec { steps, blur_sigma: 0.0 });
        self
    }

    /// Every channel of `layer`'s activation: `activation/<layer>`.
    pub fn feature_maps(self, layer: &str) -> Self {
        self.layer(layer, None, proto::LayerQuantity::Activation)
    }

    /// The `k` channels of `layer` with the largest mean activation.
    pub fn feature_maps_top_k(self, layer: &str, k: u32) -> Self {
        self.layer(layer, Some(proto::feature_map_spec::Channels::TopK(k)), proto::LayerQuantity::Activation)
    }

    /// These channels of `layer`'s activation.
    pub fn feature_maps_channels(self, layer: &str, indices: &[u32]) -> Self {
        let list = proto::ChannelList { indices: indices.to_vec() };
        self.layer(layer, Some(proto::feature_map_spec::Channels::ChannelList(list)), proto::LayerQuantity::Activation)
    }

    /// The objective's gradient with respect to `layer`: `gradient/<layer>`.
    pub fn layer_gradient(self, layer: &str) -> Self {
        self.layer(layer, None, proto::LayerQuantity::Gradient)
    }

    /// Element type the tensors travel in (decoded to f32 on arrival).
    pub fn encoding(mut self, dtype: proto::DataType) -> Self {
        self.request.encoding = dtype as i32;
        self
    }

    /// Asks the server for PNG renderings.
    pub fn render(mut self, spec: proto::RenderSpec) -> Self {
        self.request.render = Some(spec);
        self
    }

    /// Classes in the prediction.
    pub fn top_k(mut self, k: u32) -> Self {
        self.request.top_k = k;
        self
    }

    /// The request as built.
    pub fn into_request(self) -> proto::ExplainRequest {
        self.request
    }

    /// Sends the request and reassembles the explanation.
    pub async fn send(self) -> Result<Explanation, Error> {
        self.client.send(self.request).await
    }
}
