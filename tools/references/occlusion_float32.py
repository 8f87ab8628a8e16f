"""How far Captum's own Occlusion in float32 is from its float64 reference
(tests/fixtures/tiny_resnet18_w8.perturbation.npz): the float32 conditioning that bounds what the
service, which computes in float32, can match (tests/tests/attributions.rs, OCCLUSION_TOLERANCE).

    python tools/references/occlusion_float32.py      # torch 2.11, torchvision 0.26, captum 0.9.0, safetensors
"""

import numpy as np
import torch
from captum.attr import Occlusion
from tiny import FIXTURES, load


def main():
    torch.set_num_threads(1)
    model, refs, images, targets = load(torch.float32)
    references = np.load(FIXTURES / "tiny_resnet18_w8.perturbation.npz")
    for window, stride in [(8, 4), (12, 5)]:
        attribution = Occlusion(model).attribute(
            images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.0, target=targets
        )
        attribution = attribution.detach().numpy()
        reference = references[f"occlusion/w{window}s{stride}/zeros"]
        for image in range(len(targets)):
            error = np.linalg.norm(attribution[image] - reference[image]) / np.linalg.norm(reference[image])
            rms = np.sqrt((reference[image] ** 2).mean())
            logit = refs["logits"][image, targets[image]]
            print(
                f"window {window} stride {stride} image {image}: float32 vs float64 relative L2 {error:.2e} "
                f"(values' rms {rms:.2e}, target logit {logit:.3f})"
            )


if __name__ == "__main__":
    main()
