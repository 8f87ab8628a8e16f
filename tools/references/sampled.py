"""References for the sampled methods, GradientSHAP and RISE, in float64 on the tiny fixture:
tests/fixtures/tiny_resnet18_w8.sampled.npz.

The model is torchvision's ResNet-18 topology at width 8 holding tiny_resnet18_w8.safetensors (the
weights of the tiny ONNX exports); the images and targets are those of tiny_resnet18_w8.refs.npz.
Both methods draw random numbers; the service draws them from its documented SplitMix64 stream
(proto `GradientShap` and `Rise`), which `seeded.py` reproduces, so each image's draws here are the
ones the service makes for the same seed.

GradientSHAP is Captum 0.9's `GradientShap` itself, its three random draws (`np.random.choice` for
the baselines, `torch.normal` for the noise, `np.random.uniform` for α) answered with the service's
draws for that image: per draw, the baseline index ⌊u · count⌋, α = u, then the noise. Settings:
16 draws, σ 0.1, baselines {zeros, black} (black: pixel 0 normalised with ImageNet's mean and
standard deviation), seed 3; and 8 draws without noise from zeros, seed 1.

RISE (Petsiuk et al. 2018; no reference library runs it on a PyTorch model with these masks:
OpenVINO XAI's upsamples with OpenCV's bicubic filter from NumPy's PCG64) is its definition: per
mask a grid of cells kept when u < keep, bilinear upsampling (`torch.nn.functional.interpolate`,
align_corners=False) to (cells + 1) · ⌈side / cells⌉ and a crop at shifts ⌊u · cell⌋, the model's
softmax probability of the target on image ⊙ mask, and Σ probability · mask / (masks · keep).
Settings: 64 masks of 4 × 4 cells kept at 0.5, seed 2; 32 masks of 7 × 7 cells kept at 0.3, seed 9
(cells of 10 pixels over 64: the crop is not a whole number of cells).

Keys: `gradient_shap/s16_sd0.1_zeros_black`, `gradient_shap/s8_sd0_zeros` [N, 3, H, W];
`rise/m64_c4_k0.5_s2`, `rise/m32_c7_k0.3_s9` [N, 1, H, W]; float32.

    python tools/references/sampled.py      # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import GradientShap
from seeded import Draws
from tiny import FIXTURES, load

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# (key, draws, σ, baselines, seed)
SHAP = [("s16_sd0.1_zeros_black", 16, 0.1, ["zeros", "black"], 3), ("s8_sd0_zeros", 8, 0.0, ["zeros"], 1)]
# (key, masks, cells, keep, seed)
RISE = [("m64_c4_k0.5_s2", 64, 4, 0.5, 2), ("m32_c7_k0.3_s9", 32, 7, 0.3, 9)]


def gradient_shap(model, image, target, samples, stdev, baselines, seed):
    """Captum's GradientShap of one image [1, 3, H, W], with the service's draws."""
    draws = Draws(seed)
    indices, alphas, noise = [], [], []
    for _ in range(samples):
        indices.append(min(int(draws.uniform() * len(baselines)), len(baselines) - 1))
        alphas.append(draws.uniform())
        noise.append(draws.normal(image.numel()) if stdev > 0 else np.zeros(image.numel()))
    noise = torch.from_numpy(np.stack(noise)).reshape(samples, *image.shape[1:])
    with (
        mock.patch("numpy.random.choice", lambda count, size: np.array(indices)),
        mock.patch("numpy.random.uniform", lambda low, high, size: np.array(alphas)),
        mock.patch("torch.normal", lambda mean, std: noise * std),
    ):
        attribution = GradientShap(model).attribute(
            image, baselines=torch.cat(baselines), n_samples=samples, stdevs=stdev, target=target
        )
    return attribution.detach()


def rise(model, image, target, masks, cells, keep, seed):
    """RISE of one image [1, 3, H, W] with the service's masks."""
    draws = Draws(seed)
    _, _, height, width = image.shape
    cell_height, cell_width = -(-height // cells), -(-width // cells)
    total = torch.zeros(height, width, dtype=torch.float64)
    for _ in range(masks):
        grid = torch.from_numpy((draws.uniform(cells * cells) < keep).astype(np.float64)).reshape(1, 1, cells, cells)
        down = min(int(draws.uniform() * cell_height), cell_height - 1)
        across = min(int(draws.uniform() * cell_width), cell_width - 1)
        size = ((cells + 1) * cell_height, (cells + 1) * cell_width)
        mask = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)[0, 0]
        mask = mask[down : down + height, across : across + width]
        with torch.no_grad():
            probability = torch.softmax(model(image * mask), dim=1)[0, target]
        total += probability * mask
    return (total / (masks * keep)).reshape(1, 1, height, width)


def main():
    model, _, images, targets = load()
    black = torch.tensor([-m / s for m, s in zip(MEAN, STD)], dtype=torch.float64).reshape(1, 3, 1, 1)
    baseline_images = {"zeros": torch.zeros_like(images[:1]), "black": black.expand_as(images[:1]).contiguous()}
    out = {}
    for key, samples, stdev, names, seed in SHAP:
        attributions = [
            gradient_shap(model, image[None], target, samples, stdev, [baseline_images[n] for n in names], seed)
            for image, target in zip(images, targets)
        ]
        out[f"gradient_shap/{key}"] = torch.cat(attributions).numpy().astype(np.float32)
    for key, masks, cells, keep, seed in RISE:
        maps = [rise(model, image[None], target, masks, cells, keep, seed) for image, target in zip(images, targets)]
        out[f"rise/{key}"] = torch.cat(maps).numpy().astype(np.float32)
    np.savez_compressed(FIXTURES / "tiny_resnet18_w8.sampled.npz", **out)
    print(f"wrote {len(out)} arrays to {FIXTURES / 'tiny_resnet18_w8.sampled.npz'}")


if __name__ == "__main__":
    main()
