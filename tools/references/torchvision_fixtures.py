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
| `resnext_tiny` | ResNeXt: torchvision's ResNet with Bottleneck blocks 1-1-1-1 from 8 channels, 2 groups of 16 (tools/train's NarrowResNet) | the ResNet naming of bottleneck blocks, grouped convolutions |
| `squeezenet_tiny` | SqueezeNet 1.1 with its Fire modules narrowed (16/32 channels) | Fire modules' Concat, MaxPool with `ceil_mode` |
| `mobilenet_v2_w01` | MobileNetV2, width 0.1 | ReLU6 (Clip), inverted residuals |
| `mobilenet_v3_large_w01` | MobileNetV3-Large, width 0.1 | as V3-Small, deeper, ReLU and HardSwish stages |
| `wide_resnet_tiny` | Wide ResNet: the ResNeXt above with one group twice as wide, from 4 channels | wide Bottleneck blocks under ResNet naming |
| `vgg11_bn_tiny` | VGG-11-BN, convolutions a sixteenth and the classifier a 256th as wide; 224 × 224, one image | its 7 × 7 adaptive pool (exportable only where it is the identity) |

VGG's 7 × 7 adaptive pool does not export below 224 × 224, so its fixture takes 224 × 224 and one
image (the references of more would be megabytes). For each, writes tests/fixtures/<fixture>.legacy.onnx (legacy exporter, opset 17), .dynamo.onnx
(dynamo exporter, opset 20) and .refs.npz:
- `input` [2, 3, 64, 64] (seeded), `target` [2];
- `grad.input`, `grad.input.cross_entropy`: torch's input gradients of the target logit and of the
  per-image cross-entropy loss;
- `grad_cam.<layer>`: Captum 0.9's `LayerGradCam` at the last block (RegNet-Y: its stem;
  SqueezeNet: `features.6`; Wide ResNet: `layer3.0`; where the maps are not zero everywhere at this
  initialisation), with
  `relu_attributions=True` (Grad-CAM's ReLU); the layer is named as the service names it;
- `act.<layer>`: the outputs of the blocks the service lists as layers.

    python tools/references/torchvision_fixtures.py   # torch 2.11, torchvision 0.26, captum 0.9.0, onnxscript
"""

import warnings

import numpy as np
import torch
import torchvision
from captum.attr import LayerGradCam
from tiny import FIXTURES
from torch import nn
from torchvision.models import DenseNet, ShuffleNetV2
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.resnet import Bottleneck
from torchvision.models.squeezenet import Fire, SqueezeNet
from torchvision.models.vgg import VGG, make_layers
from torchvision_gradients import torch_gradients
from train import NarrowResNet

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


def vgg():
    model = VGG(make_layers([4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"], batch_norm=True), num_classes=10)
    model.classifier = nn.Sequential(
        nn.Linear(32 * 7 * 7, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
        nn.Linear(16, 10),
    )
    return model


def squeezenet():
    model = SqueezeNet("1_1", num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 8, 8),
        Fire(16, 4, 8, 8),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 8, 16, 16),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 16, 16),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(p=0.5), nn.Conv2d(32, 10, kernel_size=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
    )
    return model


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
    "regnet_y_tiny": (
        regnet,
        ["stem.2", "trunk_output.block1", "trunk_output.block2", "trunk_output.block3.block3-0"]
        + ["trunk_output.block3.block3-1"],
        "stem.2",
    ),
    "resnext_tiny": (
        lambda: NarrowResNet(8, [1, 1, 1, 1], 10, block=Bottleneck, groups=2, width_per_group=16),
        ["maxpool", "layer1.0", "layer2.0", "layer3.0", "layer4.0"],
        "layer4.0",
    ),
    "squeezenet_tiny": (squeezenet, [f"features.{n}" for n in range(9)], "features.6"),
    "mobilenet_v2_w01": (
        lambda: torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.1),
        [f"features.{n}" for n in range(19)],
        "features.18",
    ),
    "mobilenet_v3_large_w01": (
        lambda: torchvision.models.mobilenet_v3_large(num_classes=10, width_mult=0.1),
        [f"features.{n}" for n in range(17)],
        "features.16",
    ),
    "wide_resnet_tiny": (
        lambda: NarrowResNet(4, [1, 1, 1, 1], 10, block=Bottleneck, groups=1, width_per_group=128),
        ["maxpool", "layer1.0", "layer2.0", "layer3.0", "layer4.0"],
        "layer3.0",
    ),
    "vgg11_bn_tiny": (vgg, [f"features.{n}" for n in (14, 21, 28)], "features.27"),
}
# Fixtures at another size than SIZE, with fewer images: fixture → (side, images).
SIZES = {"vgg11_bn_tiny": (224, 1)}


def make(constructor):
    torch.manual_seed(0)
    return constructor().eval()


def main():
    warnings.filterwarnings("ignore")
    for name, (constructor, blocks, cam_layer) in FAMILIES.items():
        side, count = SIZES.get(name, (SIZE, 2))
        # Two images to export with (the dynamo exporter keeps a batch of one static), `count` checked.
        images = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
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
        images, targets = images[:count], torch.tensor([3, 7][:count])
        x = images.double()
        out = {"input": images.numpy(), "target": targets.numpy()}
        logit, cross_entropy = torch_gradients(reference, images, targets, torch.float64)
        out["grad.input"], out["grad.input.cross_entropy"] = logit.astype(np.float32), cross_entropy.astype(np.float32)
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
