"""References for the class-activation-map family, computed by pytorch-grad-cam 1.5 and Captum 0.9
in float64 on the tiny fixture: tests/fixtures/tiny_resnet18_w8.cams.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
For each variant and layer, pytorch-grad-cam's own hooks record the layer's activations and the
target logit's gradients, and the variant's `get_cam_image` combines them, then ReLU — the map its
`__call__` computes before min-max scaling and resizing, which a service returning raw maps does not
do. The upsampled reference is that map through torch.nn.functional.interpolate (bilinear,
align_corners=False), the service's documented upsampling.

EigenCAM and EigenGradCAM project on a singular vector whose sign LAPACK picks; the references
use pytorch-grad-cam's sign-corrected projection (`get_2d_projection_with_sign_correction`: negated
when |min| > |max|), as the service does, on the activations (EigenCAM) or gradients × activations
(EigenGradCAM) that the library's `get_cam_image` projects.

Score-CAM's `get_cam_image` runs its own forward passes of the masked inputs (float64 here), and
Ablation-CAM's its forward passes with the layer replaced by its `AblationLayer` (each row the
layer's activation with one channel zeroed).

Guided Grad-CAM is Captum's `GuidedGradCam` (guided backpropagation × Grad-CAM upsampled by
nearest neighbour) for the same targets.

Keys: `<variant>/<layer>` [N, 1, h, w] and `<variant>/<layer>/upsampled` [N, 1, H, W];
`guided_grad_cam/<layer>` [N, 3, H, W]; float32.

    python tools/references/cam_variants.py      # torch 2.11, torchvision 0.26, grad-cam 1.5.7, captum 0.9.0, safetensors
"""

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import GuidedGradCam
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
from tiny import FIXTURES, load
VARIANTS = {
    "grad_cam": GradCAM,
    "grad_cam_plus_plus": GradCAMPlusPlus,
    "xgrad_cam": XGradCAM,
    "hires_cam": HiResCAM,
    "layer_cam": LayerCAM,
    "eigen_cam": EigenCAM,
    "eigen_grad_cam": EigenGradCAM,
    "score_cam": ScoreCAM,
    "ablation_cam": AblationCAM,
}
# What each eigen variant's `get_cam_image` projects.
PROJECTED = {
    "eigen_cam": lambda activations, gradients: activations,
    "eigen_grad_cam": lambda activations, gradients: gradients * activations,
}
LAYERS = ["layer4.1", "layer3.1", "layer2.1"]


def main():
    model, refs, images, classes = load()
    targets = [ClassifierOutputTarget(c) for c in classes]
    modules = dict(model.named_modules())
    out = {}
    for name, variant in VARIANTS.items():
        for layer in LAYERS:
            cam = variant(model=model, target_layers=[modules[layer]])
            outputs = cam.activations_and_grads(images)
            model.zero_grad()
            sum(target(output) for target, output in zip(targets, outputs)).backward()
            activations = cam.activations_and_grads.activations[0].numpy()
            gradients = cam.activations_and_grads.gradients[0].numpy()
            raw = cam.get_cam_image(images, modules[layer], targets, activations, gradients, eigen_smooth=False)
            if name in PROJECTED:
                corrected = get_2d_projection_with_sign_correction(PROJECTED[name](activations, gradients))
                assert all(np.allclose(c, r) or np.allclose(c, -r) for c, r in zip(corrected, raw)), name
                raw = corrected
            raw = np.maximum(raw, 0)[:, None]
            upsampled = F.interpolate(torch.from_numpy(raw), size=images.shape[2:], mode="bilinear", align_corners=False)
            out[f"{name}/{layer}"] = raw.astype(np.float32)
            out[f"{name}/{layer}/upsampled"] = upsampled.numpy().astype(np.float32)
            cam.activations_and_grads.release()
    for layer in LAYERS:
        guided = GuidedGradCam(model, modules[layer]).attribute(images, target=classes)
        out[f"guided_grad_cam/{layer}"] = guided.detach().numpy().astype(np.float32)
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.cams.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.cams.npz'}")


if __name__ == "__main__":
    main()
