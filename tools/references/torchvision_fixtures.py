"""Reduced torchvision classifiers as test fixtures, with references in float64: five families whose
ops and module scopes a ResNet never exercises, each at 10 classes, seeded initialisation and
64 × 64 input, with widths cut so the files stay small.

| fixture | architecture | what it exercises |
|---|---|---|
| `mobilenet_v3_small_w025` | MobileNetV3-Small, width 0.25 | HardSwish, HardSigmoid, squeeze-excitation products |
| `efficientnet_b0_w025` | EfficientNet-B0, width and depth 0.25 | SiLU (Sigmoid times its input), squeeze-excitation |
| `shufflenet_v2_tiny` | ShuffleNetV2, stages 2-2-2 of 16/32/64 channels | channel shuffle (Reshape, Transpose), `chunk` (Split or Slice) |
| `convnext_tiny_w8` | ConvNeXt, one block per stage of 8/16/32/64 channels, layer scale 0.5 | channels-last LayerNorm, GELU, Transpose |
| `densenet_tiny` | DenseNet, growth 4, blocks 2-2-2-2 | Concat of every earlier layer, transitions |
| `regnet_y_tiny` | RegNet-Y, depth 4, w₀ 8, group width 8, SE ratio 0.25 | grouped convolutions, squeeze-excitation |

For each, writes tests/fixtures/<fixture>.legacy.onnx (legacy exporter, opset 17), .dynamo.onnx
(dynamo exporter, opset 20) and .refs.npz:
- `input` [2, 3, 64, 64] (seeded), `target` [2];
- `grad.input`, `grad.input.cross_entropy`: torch's input gradients of the target logit and of the
  per-image cross-entropy loss;
- `grad_cam.<layer>`: Captum 0.9's `LayerGradCam` at the last block (RegNet-Y: its stem, where the
  map is not zero everywhere at this initialisation), with `relu_attributions=True` (Grad-CAM's
  ReLU); the layer is named as the service names it;
- `act.<layer>`: the outputs of the blocks the service lists as layers.

    python tools/references/torchvision_fixtures.py   # torch 2.11, torchvision 0.26, captum 0.9.0, onnxscript
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerGradCam
from tiny import FIXTURES
from torchvision.models import DenseNet, ShuffleNetV2
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models.regnet import BlockParams, RegNet

SIZE = 64


def efficientnet():
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(setting, 0.2, last_channel=last_channel, num_classes=10)


def convnext():
    stages = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)]
    return ConvNeXt(stages, stochastic_depth_prob=0.0, layer_scale=0.5, num_classes=10)


def regnet():
    blocks = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return RegNet(blocks, num_classes=10, stem_width=8)


# fixture → (constructor, the blocks whose outputs are checked, the Grad-CAM layer)
FAMILIES = {
    "mobilenet_v3_small_w025": (
        lambda: torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.25),
        [f"features.{n}" for n in range(13)],
        "features.12",
    ),
    "efficientnet_b0_w025": (efficientnet, [f"features.{n}" for n in range(9)], "features.8"),
    "shufflenet_v2_tiny": (
        lambda: ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10),
        ["maxpool", "stage2.0", "stage2.1", "stage3.0", "stage3.1", "stage4.0", "stage4.1", "conv5.2"],
        "conv5.2",
    ),
    "convnext_tiny_w8": (convnext, [f"features.{n}" for n in range(8)], "features.7"),
    "densenet_tiny": (
        lambda: DenseNet(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, bn_size=2, num_classes=10),
        ["features.pool0"] + [f"features.{kind}{n}" for n in range(1, 4) for kind in ("denseblock", "transition")]
        + ["features.denseblock4", "features.norm5"],
        "features.norm5",
    ),
    "regnet_y_tiny": (regnet, ["stem.2"] + [f"trunk_output.block{n}" for n in range(1, 4)], "stem.2"),
}


def make(constructor):
    torch.manual_seed(0)
    return constructor().eval()


def main():
    warnings.filterwarnings("ignore")
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([3, 7])
    for name, (constructor, blocks, cam_layer) in FAMILIES.items():
        exported = make(constructor)
        torch.onnx.export(
            exported, images[:1], FIXTURES / f"{name}.legacy.onnx", input_names=["input"], output_names=["logits"],
            opset_version=17, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )
        torch.onnx.export(
            exported, (images,), FIXTURES / f"{name}.dynamo.onnx", input_names=["input"], output_names=["logits"],
            opset_version=20, dynamic_shapes={"x": {0: torch.export.Dim.AUTO}}, dynamo=True, external_data=False,
        )
        reference = make(constructor).double()
        x = images.double()
        out = {"input": images.numpy(), "target": targets.numpy()}
        for key, cross_entropy in (("grad.input", False), ("grad.input.cross_entropy", True)):
            inputs = x.clone().requires_grad_()
            logits = reference(inputs)
            objective = (
                F.cross_entropy(logits, targets, reduction="sum")
                if cross_entropy
                else logits.gather(1, targets[:, None]).sum()
            )
            (gradient,) = torch.autograd.grad(objective, inputs)
            out[key] = gradient.numpy().astype(np.float32)
        cam = LayerGradCam(reference, reference.get_submodule(cam_layer))
        out[f"grad_cam.{cam_layer}"] = (
            cam.attribute(x, target=targets, relu_attributions=True).detach().numpy().astype(np.float32)
        )
        activations = {}
        hooks = [
            reference.get_submodule(block).register_forward_hook(
                # A copy: DenseNet's forward applies ReLU in place to `features.norm5`'s output.
                lambda _m, _i, output, block=block: activations.__setitem__(block, output.detach().clone())
            )
            for block in blocks
        ]
        with torch.no_grad():
            reference(x)
        for hook in hooks:
            hook.remove()
        for block, activation in activations.items():
            out[f"act.{block}"] = activation.numpy().astype(np.float32)
        np.savez_compressed(FIXTURES / f"{name}.refs.npz", **out)
        print(f"wrote {name}.legacy.onnx, {name}.dynamo.onnx and {len(out)} arrays to {name}.refs.npz")


if __name__ == "__main__":
    main()
