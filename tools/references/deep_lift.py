"""References for DeepLift (the rescale rule) in float64 on the tiny fixture:
tests/fixtures/tiny_resnet18_w8.deep_lift.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
The attributions are Captum 0.9's `DeepLift` (multiplied by inputs, eps 1e-10), with three changes
that leave the model's function as it is but are needed for Captum's rules to be the DeepLift the
paper defines, whose attributions add up to f(x) − f(baseline):

- Each residual block uses its ReLU module twice, which Captum's DeepLift refuses ("a Module … is
  being used more than once"); every block gets a second, separate ReLU.
- When a ReLU's output goes straight into a MaxPool (the stem's `relu` → `maxpool`), Captum's hook
  on the ReLU sees the plain gradient of the pool, not the pool's DeepLift multipliers (the two
  hooks sit on the same tensor). A copy (x · 1) between them makes the ReLU see the multipliers.
- Captum moves max pooling's output differences back with `max_unpool2d`, which keeps one of the
  values when overlapping windows (ResNet's 3 × 3 stride-2 pool) pick the same input position.
  Here they are added (`scatter_add`), as the gradient of max pooling adds them.

With all three, |Σ attribution − (f(x) − f(baseline))| ≤ 1e-16 here. Captum with the first change
only is up to 1.1e-2 from it, and its maps are 2e-4 to 1.1 relative L2 from these: `--captum`
prints both for each map.

Settings: baselines zeros and black (pixel 0 normalised with ImageNet's mean and standard
deviation). Keys: `deep_lift/zeros`, `deep_lift/black` [N, 3, H, W] float32, and
`deep_lift/<baseline>/delta` [N]: Σ attribution − (f(x) − f(baseline)), as Captum's convergence
delta.

    python tools/references/deep_lift.py    # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

import sys
import types
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import DeepLift
from tiny import FIXTURES, load
from torch import nn
from torchvision.models.resnet import BasicBlock

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def block_forward(self, x):
    """torchvision's BasicBlock.forward with its second ReLU a separate module."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)


def unshare_relus(model):
    """Gives every residual block its own second ReLU (not in place); the function is unchanged."""
    model.relu = nn.ReLU()
    for module in model.modules():
        if isinstance(module, BasicBlock):
            module.relu, module.relu_out = nn.ReLU(), nn.ReLU()
            module.forward = types.MethodType(block_forward, module)
    return model


class Copy(nn.Module):
    """x · 1: a separate tensor between two modules Captum hooks."""

    def forward(self, x):
        return x * 1.0


def separate_relu_from_pool(model):
    """Puts a copy between the stem's ReLU and its MaxPool; the function is unchanged."""
    model.maxpool = nn.Sequential(Copy(), model.maxpool)
    return model


def summing_unpool(values, indices, kernel_size, stride, padding, output_size):
    """`max_unpool2d` that adds values sent to the same position instead of keeping one."""
    batch, channels = values.shape[:2]
    out = values.new_zeros(batch, channels, output_size[-2] * output_size[-1])
    out.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return out.reshape(batch, channels, output_size[-2], output_size[-1])


def deep_lift(model, image, baseline, target, summing=True):
    """Captum's DeepLift of one image [1, 3, H, W] from `baseline`, and its convergence delta."""
    explainer = DeepLift(model)
    if not summing:
        return explainer.attribute(image, baselines=baseline, target=target, return_convergence_delta=True)
    with mock.patch.object(F, "max_unpool2d", summing_unpool):
        return explainer.attribute(image, baselines=baseline, target=target, return_convergence_delta=True)


def main():
    model, _, images, targets = load()
    captum = unshare_relus(load()[0])
    model = separate_relu_from_pool(unshare_relus(model))
    black = torch.tensor([-m / s for m, s in zip(MEAN, STD)], dtype=torch.float64).reshape(1, 3, 1, 1)
    baselines = {"zeros": torch.zeros_like(images[:1]), "black": black.expand_as(images[:1]).contiguous()}
    out = {}
    for name, baseline in baselines.items():
        maps, deltas = [], []
        for image, target in zip(images, targets):
            attribution, delta = deep_lift(model, image[None], baseline, target)
            maps.append(attribution.detach())
            deltas.append(delta.detach())
            if "--captum" in sys.argv:
                as_is, as_is_delta = deep_lift(captum, image[None], baseline, target, summing=False)
                moved = (as_is - attribution).norm() / attribution.norm()
                print(
                    f"{name}: Captum with unshared ReLUs only: map {moved:.3e} relative L2 away, "
                    f"delta {as_is_delta.item():.3e} (with all three changes: {delta.item():.3e})"
                )
        out[f"deep_lift/{name}"] = torch.cat(maps).numpy().astype(np.float32)
        out[f"deep_lift/{name}/delta"] = torch.cat(deltas).numpy().astype(np.float32)
        print(f"{name}: worst |delta| {max(abs(d.item()) for d in deltas):.3e}")
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.deep_lift.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.deep_lift.npz'}")


if __name__ == "__main__":
    main()
