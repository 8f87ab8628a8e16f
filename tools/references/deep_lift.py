"""References for DeepLift (the rescale rule) in float64 on the tiny fixture:
tests/fixtures/tiny_resnet18_w8.deep_lift.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
The attributions are Captum 0.9's `DeepLift` (multiplied by inputs, eps 1e-10) with the three
changes `captum_deep_lift.py` explains (unshared ReLUs, a copy between the stem's ReLU and max
pool, overlapping max-pool windows added), which it needs for its attributions to add up to
f(x) − f(baseline) on a ResNet. With them, |Σ attribution − (f(x) − f(baseline))| ≤ 1e-16 here.
Captum with the first change only is up to 1.1e-2 from it, and its maps are 2e-4 to 1.1 relative
L2 from these: `--captum` prints both for each map, and the ReLU-before-MaxPool defect alone on a
5-layer Sequential.

Settings: baselines zeros and black (pixel 0 normalised with ImageNet's mean and standard
deviation). Keys: `deep_lift/zeros`, `deep_lift/black` [N, 3, H, W] float32, and
`deep_lift/<baseline>/delta` [N]: Σ attribution − (f(x) − f(baseline)), as Captum's convergence
delta.

    python tools/references/deep_lift.py    # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

import sys

import numpy as np
import torch
from torch import nn
from captum_deep_lift import Copy, deep_lift, prepare, unshare_relus
from tiny import FIXTURES, load

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def hook_order():
    """Captum's ReLU-before-MaxPool defect on a 5-layer Sequential: Σ attribution − Δf without and
    with a copy between the two (max_unpool2d's defect does not arise: 2 × 2 windows do not overlap)."""
    torch.manual_seed(0)
    conv, relu, pool = nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)
    head = [nn.Flatten(), nn.Linear(2 * 4 * 4, 1)]
    x, baseline = torch.randn(1, 1, 8, 8, dtype=torch.float64), torch.randn(1, 1, 8, 8, dtype=torch.float64)
    for label, layers in (("ReLU → MaxPool", [conv, relu, pool]), ("ReLU → copy → MaxPool", [conv, relu, Copy(), pool])):
        model = nn.Sequential(*layers, *head).double().eval()
        _, delta = deep_lift(model, x, baseline, 0, summing=False)
        print(f"{label}: Σ attribution − (f(x) − f(baseline)) = {delta.item():.3e}")


def main():
    model, _, images, targets = load()
    model = prepare(model)
    captum = unshare_relus(load()[0])
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
    if "--captum" in sys.argv:
        hook_order()
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.deep_lift.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.deep_lift.npz'}")


if __name__ == "__main__":
    main()
