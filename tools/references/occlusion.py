"""References for Occlusion, computed by Captum 0.9 in float64 on the tiny fixture:
tests/fixtures/tiny_resnet18_w8.occlusion.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
`captum.attr.Occlusion` with square windows over all three channels
(`sliding_window_shapes=(3, w, w)`, `strides=(3, s, s)`) explains each target's logit. Three
settings: window 8 stride 4 and window 12 stride 5 (whose last windows are cut at the edge) with
zeros, and window 12 stride 5 with a black image (pixel value 0 normalised with ImageNet's mean and
standard deviation, the service's `black` baseline) as the baseline.

Keys: `occlusion/w<window>s<stride>/<baseline>` [N, 3, H, W], float32.

    python tools/references/occlusion.py      # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

import numpy as np
import torch
from captum.attr import Occlusion
from tiny import FIXTURES, load

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SETTINGS = [(8, 4, "zeros"), (12, 5, "zeros"), (12, 5, "black")]


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
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.occlusion.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.occlusion.npz'}")


if __name__ == "__main__":
    main()
