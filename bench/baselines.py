"""In-process baselines for the explain benchmark: the same methods, weights and inputs as the
service, run by PyTorch + Captum and by ONNX Runtime on the very graphs the service runs for each
method (the ceiling for the service's overhead): the forward graph for predictions and feature
maps, the head-gradient graph for Grad-CAM at the last layer, the gradient graph for the rest.
Never part of the test suite; see bench/README.md.

    python bench/baselines.py --model M.onnx --graphs DIR --layers T1,...,T11 --json out.json

DIR holds forward.onnx, head.onnx and gradient.onnx, written by `explaind augment --graph ...`.
"""

import argparse
import json
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)

from models import resnet_from_onnx

# Captum warns that it sets requires_grad and hooks ReLUs, on every call.
warnings.filterwarnings("ignore", category=UserWarning, module="captum")

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def image(batch, size):
    """The benchmark's deterministic images (explain-bench sends the same values)."""
    i = np.arange(3 * size * size)
    values = (((i * 7919) % 255) / 255.0 - 0.45) / 0.225
    one = values.reshape(1, 3, size, size).astype(np.float32)
    return np.repeat(one, batch, axis=0)


def timed(run, duration, warmup=1):
    """Seconds per call of `run`, after `warmup` calls, over at least `duration` seconds."""
    for _ in range(warmup):
        run()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= duration and calls >= 2:
            return elapsed / calls


def captum_method(model, method, x, target, args):
    """A callable computing `method` for the batch `x` with Captum."""
    if method == "classify":
        return lambda: model(x)
    if method == "feature_maps":
        modules = [model.relu, model.maxpool] + [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer] + [model.avgpool]
        captured = []
        for module in modules:
            module.register_forward_hook(lambda _m, _i, output: captured.append(output.detach()))
        return lambda: (captured.clear(), model(x))
    if method == "saliency":
        saliency = Saliency(model)
        return lambda: saliency.attribute(x, target=target, abs=False)
    if method == "grad_cam":
        cam = LayerGradCam(model, model.layer4[1])
        return lambda: LayerAttribution.interpolate(cam.attribute(x, target=target), x.shape[-2:], "bilinear")
    if method == "guided_backprop":
        guided = GuidedBackprop(model)
        return lambda: guided.attribute(x, target=target)
    if method == "integrated_gradients":
        ig = IntegratedGradients(model)
        return lambda: ig.attribute(x, target=target, n_steps=args.steps, method="riemann_trapezoid")
    if method == "smooth_grad":
        tunnel = NoiseTunnel(Saliency(model))
        sigma = 0.15 * float(x.max() - x.min())
        return lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=args.samples, stdevs=sigma, target=target, abs=False)
    raise ValueError(method)


def ort_method(sessions, method, x, target, args, layers):
    """A callable running, in-process, the rows and graph the service runs for `method`."""
    if method in ("classify", "feature_maps"):
        outputs = ["logits"] + (layers if method == "feature_maps" else [])
        return lambda: sessions["forward"].run(outputs, {"input": x})
    rows_per_image = {"integrated_gradients": args.steps, "smooth_grad": args.samples}.get(method, 1)
    rows = np.repeat(x, rows_per_image, axis=0)
    n = rows.shape[0]
    feeds = {
        "input": rows,
        "explain.target": np.full(n, target, np.int64),
        "explain.cross_entropy": np.zeros(n, np.int64),
        "explain.guided": np.full(n, int(method == "guided_backprop"), np.int64),
    }
    if method == "grad_cam":
        return lambda: sessions["head"].run(["logits", layers[-2], "grad/" + layers[-2]], feeds)
    return lambda: sessions["gradient"].run(["logits", "grad/input"], feeds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the ONNX ResNet the service serves (legacy export)")
    parser.add_argument("--graphs", required=True, help="folder of forward.onnx, head.onnx, gradient.onnx")
    parser.add_argument("--layers", required=True, help="comma-separated graph tensors of the 11 layers, in order")
    parser.add_argument("--methods", default="saliency")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = resnet_from_onnx(args.model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {
        name: ort.InferenceSession(f"{args.graphs}/{name}.onnx", options, providers=["CPUExecutionProvider"])
        for name in ("forward", "head", "gradient")
    }
    layers = args.layers.split(",")
    results = []
    print(f"{'method':>22} {'batch':>5} {'captum img/s':>13} {'ort img/s':>10}")
    for method in args.methods.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            x = image(batch, args.size)
            with torch.inference_mode(mode=method in ("classify", "feature_maps")):
                captum_seconds = timed(captum_method(model, method, torch.from_numpy(x), 0, args), args.duration)
            ort_seconds = timed(ort_method(sessions, method, x, 0, args, layers), args.duration)
            result = {
                "method": method,
                "batch": batch,
                "captum_images_per_s": batch / captum_seconds,
                "captum_ms_per_call": captum_seconds * 1e3,
                "ort_images_per_s": batch / ort_seconds,
                "ort_ms_per_call": ort_seconds * 1e3,
            }
            results.append(result)
            print(f"{method:>22} {batch:>5} {result['captum_images_per_s']:>13.2f} {result['ort_images_per_s']:>10.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": args.threads, "torch": torch.__version__, "results": results}, out, indent=2)


if __name__ == "__main__":
    main()
