"""The tiny fixture as the reference scripts load it: torchvision's ResNet-18 topology at width 8
holding tests/fixtures/tiny_resnet18_w8.safetensors (the weights of the tiny ONNX exports), and the
images and targets of tiny_resnet18_w8.refs.npz."""

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools" / "train"))
from train import NarrowResNet  # noqa: E402


def load(dtype=torch.float64):
    """(model in eval mode, refs, images [N, 3, H, W], targets as ints), in `dtype`."""
    model = NarrowResNet(8, [2, 2, 2, 2], 10)
    model.load_state_dict(load_file(FIXTURES / "tiny_resnet18_w8.safetensors"))
    model = model.to(dtype).eval()
    refs = np.load(FIXTURES / "tiny_resnet18_w8.refs.npz")
    images = torch.from_numpy(refs["input"]).to(dtype)
    return model, refs, images, [int(t) for t in refs["target"]]
