"""Captum 0.9's `DeepLift` made to compute DeepLift on a torchvision ResNet, used by the parity
reference (`deep_lift.py`) and the benchmark's baseline (`bench/baselines.py`). Three changes, none
of which changes the model's function:

- Each residual block uses its ReLU module twice, which Captum's DeepLift refuses ("a Module … is
  being used more than once"); every block gets a second, separate ReLU.
- When a ReLU's output goes straight into a MaxPool (the stem's `relu` → `maxpool`), Captum's hook
  on the ReLU sees the plain gradient of the pool, not the pool's DeepLift multipliers (the two
  hooks sit on the same tensor). A copy (x · 1) between them makes the ReLU see the multipliers.
- Captum moves max pooling's output differences back with `max_unpool2d`, which keeps one of the
  values when overlapping windows (ResNet's 3 × 3 stride-2 pool) pick the same input position.
  Here they are added (`scatter_add`), as the gradient of max pooling adds them.
"""

import types
from unittest import mock

import torch.nn.functional as F
from captum.attr import DeepLift
from torch import nn
from torchvision.models.resnet import BasicBlock


class Copy(nn.Module):
    """x · 1: a separate tensor between two modules Captum hooks."""

    def forward(self, x):
        return x * 1.0


def block_forward(self, x):
    """torchvision's BasicBlock.forward with its second ReLU a separate module."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)


def unshare_relus(model):
    """Gives every residual block its own second ReLU (not in place), in place; returns `model`."""
    model.relu = nn.ReLU()
    for module in model.modules():
        if isinstance(module, BasicBlock):
            module.relu, module.relu_out = nn.ReLU(), nn.ReLU()
            module.forward = types.MethodType(block_forward, module)
    return model


def prepare(model):
    """`model` with unshared ReLUs and a copy between the stem's ReLU and max pool, in place."""
    unshare_relus(model)
    model.maxpool = nn.Sequential(Copy(), model.maxpool)
    return model


def summing_unpool(values, indices, kernel_size, stride, padding, output_size):
    """`max_unpool2d` that adds values sent to the same position instead of keeping one."""
    batch, channels = values.shape[:2]
    out = values.new_zeros(batch, channels, output_size[-2] * output_size[-1])
    out.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return out.reshape(batch, channels, output_size[-2], output_size[-1])


def deep_lift(model, image, baseline, target, summing=True):
    """Captum's DeepLift of `image` [N, 3, H, W] from `baseline`, and its convergence delta; with
    `summing`, overlapping max-pool windows add up."""
    explainer = DeepLift(model)
    if not summing:
        return explainer.attribute(image, baselines=baseline, target=target, return_convergence_delta=True)
    with mock.patch.object(F, "max_unpool2d", summing_unpool):
        return explainer.attribute(image, baselines=baseline, target=target, return_convergence_delta=True)
