"""References for Occlusion and Feature Ablation, computed by Captum 0.9 in float64 on the tiny
fixture: tests/fixtures/tiny_resnet18_w8.perturbation.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
`captum.attr.Occlusion` with square windows over all three channels
(`sliding_window_shapes=(3, w, w)`, `strides=(3, s, s)`) explains each target's logit. Three
settings: window 8 stride 4 and window 12 stride 5 (whose last windows are cut at the edge) with
zeros, and window 12 stride 5 with a black image (pixel value 0 normalised with ImageNet's mean and
standard deviation, the service's `black` baseline) as the baseline. `captum.attr.FeatureAblation`
with a feature mask of 9 segments (`segments`: pixel (y, x) in segment ((y // 10) · 7 + x // 13) mod
9, so most segments are not connected) and zeros as the baseline.

Keys: `occlusion/w<window>s<stride>/<baseline>` and `feature_ablation/zeros` [N, 3, H, W], float32;
`segments` [H, W], float32 (segment numbers).

    python tools/references/perturbation.py      # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

import numpy as np
import torch
from captum.attr import FeatureAblation, Occlusion
from tiny import FIXTURES, load

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SETTINGS = [(8, 4, "zeros"), (12, 5, "zeros"), (12, 5, "black")]


def segments(height, width):
    """The feature mask: 9 segments in a pattern that repeats, so most are not connected."""
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((y // 10) * 7 + x // 13) % 9


def main():
    model, _, images, targets = load()
    black = torch.tensor([-m / s for m, s in zip(MEAN, STD)], dtype=torch.float64).reshape(1, 3, 1, 1)
    baselines = {"zeros": 0.0, "black": black.expand_as(images).contiguous()}
    out = {}
    for window, stride, baseline in SETTINGS:
        attribution = Occlusion(model).attribute(
            images,
            sliding_window_shapes=(3, window, window),
            strides=(3, stride, stride),
            baselines=baselines[baseline],
            target=targets,
        )
        out[f"occlusion/w{window}s{stride}/{baseline}"] = attribution.detach().numpy().astype(np.float32)
    mask = segments(*images.shape[2:])
    feature_mask = torch.from_numpy(mask).reshape(1, 1, *mask.shape)
    attribution = FeatureAblation(model).attribute(images, baselines=0.0, target=targets, feature_mask=feature_mask)
    out["feature_ablation/zeros"] = attribution.detach().numpy().astype(np.float32)
    out["segments"] = mask.astype(np.float32)
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.perturbation.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.perturbation.npz'}")


if __name__ == "__main__":
    main()
