"""How well-conditioned is Integrated Gradients of a model in float32? Computes IG (32 steps,
trapezoid, zero baseline) of each reference image with an augmented graph (`explaind augment`),
compares it with the float64 reference, then perturbs the input by 1e-7 relative noise (below
float32 resolution) a few times and reports how far IG moves. Usage:
    ig_conditioning.py AUGMENTED.onnx REFS.npz"""

import sys

import numpy as np
import onnxruntime as ort


def relative_l2(actual, expected):
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def main(graph, refs_path, steps=32, trials=5):
    refs = np.load(refs_path)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    alphas = np.linspace(0, 1, steps)
    weights = np.full(steps, 1 / steps)
    weights[[0, -1]] /= 2
    reference = refs["captum.integrated_gradients.steps32.trapezoid.zero_baseline"].astype(np.float64)

    def integrated_gradients(image, target):
        rows = (alphas[:, None, None, None] * image).astype(np.float32)
        feeds = {
            "input": rows,
            "explain.target": np.full(steps, target, np.int64),
            "explain.cross_entropy": np.zeros(steps, np.int64),
            "explain.guided": np.zeros(steps, np.int64),
        }
        gradients = session.run(["grad/input"], feeds)[0].astype(np.float64)
        return image * (weights[:, None, None, None] * gradients).sum(0)

    random = np.random.default_rng(0)
    for index in range(refs["input"].shape[0]):
        image = refs["input"][index].astype(np.float64)
        target = int(refs["target"][index])
        base = integrated_gradients(image, target)
        moves = [
            relative_l2(integrated_gradients(image * (1 + 1e-7 * random.standard_normal(image.shape)), target), base)
            for _ in range(trials)
        ]
        print(
            f"image {index}: IG vs float64 reference {relative_l2(base, reference[index]):.2e}; "
            f"moved by 1e-7 input noise: max {max(moves):.2e}, median {np.median(moves):.2e}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
