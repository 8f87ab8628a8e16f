"""Runs a gradient-augmented graph written by `explaind augment` in the Python onnxruntime and
compares its gradients with the torch/Captum references. Usage:
    check_augmented.py AUGMENTED.onnx REFS.npz
Exits non-zero (with the failing comparison) when a gradient is off by more than 1e-4 relative L2."""

import sys

import numpy as np
import onnxruntime as ort


def relative_l2(actual, expected):
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def main(graph, refs_path):
    refs = np.load(refs_path)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    expected_inputs = {"input", "explain.target", "explain.cross_entropy", "explain.guided"}
    assert names == expected_inputs, f"inputs {names}"
    rows = refs["input"].shape[0]

    def run(cross_entropy, guided):
        feeds = {
            "input": refs["input"],
            "explain.target": refs["target"].astype(np.int64),
            "explain.cross_entropy": np.full(rows, cross_entropy, np.int64),
            "explain.guided": np.full(rows, guided, np.int64),
        }
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))

    checks = {
        "logits": (run(0, 0)["logits"], refs["logits"]),
        "grad.input": (run(0, 0)["grad/input"], refs["grad.input"]),
        "grad.input.cross_entropy": (run(1, 0)["grad/input"], refs["grad.input.cross_entropy"]),
        "captum.guided_backprop": (run(0, 1)["grad/input"], refs["captum.guided_backprop"]),
    }
    failed = False
    for name, (actual, expected) in checks.items():
        error = relative_l2(actual, expected)
        print(f"{name}: relative L2 {error:.2e}")
        failed |= not error < 1e-4
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(*sys.argv[1:])
