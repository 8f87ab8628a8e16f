"""A reduced torchvision classifier as a test fixture, with references in float64: MobileNetV3-Small
at width 0.25 (10 classes, seeded initialisation, 64 × 64 input), whose HardSwish, HardSigmoid,
squeeze-excitation products and module scopes a ResNet never exercises.

Writes tests/fixtures/mobilenet_v3_small_w025.legacy.onnx (legacy exporter, opset 17),
.dynamo.onnx (dynamo exporter, opset 20) and .refs.npz:
- `input` [3, 3, 64, 64] (seeded), `target` [3];
- `grad.input`, `grad.input.cross_entropy`: torch's input gradients of the target logit and of the
  per-image cross-entropy loss;
- `grad_cam.features.12`: Captum 0.9's `LayerGradCam` at `features.12` (the last block, 2 × 2), with
  `relu_attributions=True` (Grad-CAM's ReLU);
- `act.features.N`: each block's output, N = 0 … 12.

    python tools/references/torchvision_fixtures.py   # torch 2.11, torchvision 0.26, captum 0.9.0, onnxscript
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerGradCam
from tiny import FIXTURES

NAME = "mobilenet_v3_small_w025"
SIZE = 64


def model():
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.25).eval()


def main():
    warnings.filterwarnings("ignore")
    exported = model()
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    torch.onnx.export(
        exported, images[:1], FIXTURES / f"{NAME}.legacy.onnx", input_names=["input"], output_names=["logits"],
        opset_version=17, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
    )
    torch.onnx.export(
        exported, (images,), FIXTURES / f"{NAME}.dynamo.onnx", input_names=["input"], output_names=["logits"],
        opset_version=20, dynamic_shapes={"x": {0: torch.export.Dim.AUTO}}, dynamo=True, external_data=False,
    )
    reference = model().double()
    x = images.double()
    targets = torch.tensor([3, 7, 1])
    out = {"input": images.numpy(), "target": targets.numpy()}
    for key, cross_entropy in (("grad.input", False), ("grad.input.cross_entropy", True)):
        inputs = x.clone().requires_grad_()
        logits = reference(inputs)
        objective = (
            F.cross_entropy(logits, targets, reduction="sum") if cross_entropy else logits.gather(1, targets[:, None]).sum()
        )
        (gradient,) = torch.autograd.grad(objective, inputs)
        out[key] = gradient.numpy().astype(np.float32)
    cam = LayerGradCam(reference, reference.features[12])
    out["grad_cam.features.12"] = cam.attribute(x, target=targets, relu_attributions=True).detach().numpy().astype(np.float32)
    activations = {}
    hooks = [
        block.register_forward_hook(lambda _m, _i, output, n=n: activations.__setitem__(n, output.detach()))
        for n, block in enumerate(reference.features)
    ]
    with torch.no_grad():
        reference(x)
    for hook in hooks:
        hook.remove()
    for n, activation in activations.items():
        out[f"act.features.{n}"] = activation.numpy().astype(np.float32)
    np.savez_compressed(FIXTURES / f"{NAME}.refs.npz", **out)
    print(f"wrote {NAME}.legacy.onnx, {NAME}.dynamo.onnx and {len(out)} arrays to {NAME}.refs.npz")


if __name__ == "__main__":
    main()
