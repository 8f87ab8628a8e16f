"""Input gradients of torchvision classifiers served by the augmenter, against torch float64.

For each model: torchvision's architecture at seeded random initialisation (10 classes), exported
with the legacy exporter (opset 17) or the dynamo one (`--exporter dynamo`, opset 20; needs
onnxscript), batch left open, at SIZE × SIZE; `explaind augment` writes its
gradient graph; ONNX Runtime runs it on two seeded images, and the input gradient of the target
logit and of the per-image cross-entropy loss is compared with torch's in float64 (relative L2). The
last column is torch's own float32 error against the same float64 result, the scale a float32
engine can be held to. Where torch's float64 gradient is zero (every path to the target closed by
ReLUs) the absolute norm is printed instead. A model the augmenter refuses prints the reason `explaind augment --check`
gives.

    python tools/references/torchvision_gradients.py --explaind target/release/explaind \\
        --ort-library .cache/onnxruntime/libonnxruntime.so.1.31.1 [--size 64] [MODEL ...]
    # torch 2.11, torchvision 0.26, onnx, onnxruntime 1.31.1
"""

import argparse
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
import torchvision

MODELS = [
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "shufflenet_v2_x0_5",
    "densenet121",
    "regnet_y_400mf",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "convnext_tiny",
    "squeezenet1_0",
]


def relative_l2(actual, expected):
    """‖actual − expected‖ / ‖expected‖, or ‖actual‖ where `expected` is zero."""
    scale = np.linalg.norm(expected)
    return float(np.linalg.norm(actual - expected) / (scale if scale > 0 else 1.0))


def torch_gradients(model, images, targets, dtype):
    """Input gradients of the target logits and of the per-image cross-entropy losses."""
    model = model.to(dtype)
    results = []
    for cross_entropy in (False, True):
        x = images.to(dtype).clone().requires_grad_()
        logits = model(x)
        objective = (
            F.cross_entropy(logits, targets, reduction="sum")
            if cross_entropy
            else logits.gather(1, targets[:, None]).sum()
        )
        (gradient,) = torch.autograd.grad(objective, x)
        results.append(gradient.detach().double().numpy())
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--explaind", required=True)
    parser.add_argument("--ort-library", required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--exporter", choices=["legacy", "dynamo"], default="legacy")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print("| model | target logit | cross-entropy | torch float32 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(num_classes=10).eval()
            images = torch.randn(2, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
            targets = torch.tensor([3, 7])
            exported, augmented = Path(folder, f"{name}.onnx"), Path(folder, f"{name}.gradient.onnx")
            if args.exporter == "legacy":
                torch.onnx.export(
                    model, images[:1], exported, input_names=["input"], output_names=["logits"], opset_version=17,
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                )
            else:
                try:
                    torch.onnx.export(
                        model, (images,), exported, input_names=["input"], output_names=["logits"], opset_version=20,
                        dynamic_shapes={"x": {0: torch.export.Dim.AUTO}}, dynamo=True, external_data=False,
                    )
                except Exception as error:  # noqa: BLE001 (an exporter failure is a row of the table)
                    print(f"| {name} | the dynamo exporter fails: {str(error).splitlines()[0][:120]} | | |")
                    continue
            command = [args.explaind, "--log-filter", "error", "augment", str(exported), "--ort-library", args.ort_library]
            built = subprocess.run(command + ["-o", str(augmented)], capture_output=True, text=True)
            if built.returncode != 0:
                check = subprocess.run(command + ["--check"], capture_output=True, text=True).stdout
                reason = next((line for line in check.splitlines() if line.startswith("gradients:")), built.stderr)
                print(f"| {name} | {reason[:200]} | | |")
                continue
            session = ort.InferenceSession(str(augmented), providers=["CPUExecutionProvider"])
            served = []
            for cross_entropy in (0, 1):
                feeds = {
                    "input": images.numpy(),
                    "explain.target": targets.numpy().astype(np.int64),
                    "explain.cross_entropy": np.full(2, cross_entropy, np.int64),
                    "explain.guided": np.zeros(2, np.int64),
                }
                served.append(session.run(["grad/input"], feeds)[0].astype(np.float64))
            expected = torch_gradients(model, images, targets, torch.float64)
            single = torch_gradients(model, images, targets, torch.float32)
            errors = [relative_l2(s, e) for s, e in zip(served, expected)]
            torch_error = max(relative_l2(s, e) for s, e in zip(single, expected))
            print(f"| {name} | {errors[0]:.1e} | {errors[1]:.1e} | {torch_error:.1e} |")


if __name__ == "__main__":
    main()
