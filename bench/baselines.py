"""In-process baselines for the explain benchmark: the same methods, weights and inputs as the
service, run by PyTorch + the library each method comes from (Captum; pytorch-grad-cam for the
CAM family; RISE, which no PyTorch library offers, by its definition in PyTorch) and, for the
methods the service runs as one graph call per image or per batch of steps, by ONNX Runtime on the
very graphs the service runs (the ceiling for the service's overhead): the forward graph for
predictions and feature maps, the head-gradient graph for Grad-CAM at the last layer, the gradient
graph for the rest. Never part of the test suite; see bench/README.md.

    python bench/baselines.py --model M.onnx --graphs DIR --layers T1,...,T11 --json out.json

DIR holds forward.onnx, head.onnx and gradient.onnx, written by `explaind augment --graph ...`.
"""

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from captum.attr import (
    FeatureAblation,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from models import resnet_from_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "references"))
import captum_deep_lift  # noqa: E402

# Captum warns that it sets requires_grad and hooks ReLUs, on every call.
warnings.filterwarnings("ignore", category=UserWarning, module="captum")

# pytorch-grad-cam's classes, by the service's method names; each upsamples to the input (as the
# benchmark asks the service to).
GRAD_CAM_LIBRARY = {
    "grad_cam_plus_plus": GradCAMPlusPlus,
    "xgrad_cam": XGradCAM,
    "hires_cam": HiResCAM,
    "layer_cam": LayerCAM,
    "eigen_cam": EigenCAM,
    "eigen_grad_cam": EigenGradCAM,
    "score_cam": ScoreCAM,
    "ablation_cam": AblationCAM,
}
# Rows per library call of the perturbation methods, as the service's 8-row engine runs.
PERTURBATIONS_PER_EVAL = 8

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


def grid_segments(size, cells=7):
    """Feature Ablation's segments in the benchmark: a `cells` × `cells` grid (explain-bench's)."""
    cell = np.minimum(np.arange(size) * cells // size, cells - 1)
    return torch.from_numpy(cell[:, None] * cells + cell[None, :]).reshape(1, 1, size, size)


def rise(model, x, target, masks=500, cells=8, keep=0.5, batch=PERTURBATIONS_PER_EVAL):
    """RISE as the service computes it (its defaults), in PyTorch: masks drawn and upsampled per call."""
    size = x.shape[-1]
    cell = -(-size // cells)
    total = torch.zeros(size, size)
    with torch.no_grad():
        for start in range(0, masks, batch):
            count = min(batch, masks - start)
            grids = (torch.rand(count, 1, cells, cells) < keep).float()
            upsampled = F.interpolate(grids, size=((cells + 1) * cell,) * 2, mode="bilinear", align_corners=False)
            shifts = torch.randint(0, cell, (count, 2))
            chosen = torch.stack([u[0, dy : dy + size, dx : dx + size] for u, (dy, dx) in zip(upsampled, shifts)])
            probabilities = torch.softmax(model(x * chosen[:, None]), dim=1)[:, target]
            total += (probabilities[:, None, None] * chosen).sum(0)
    return total / (masks * keep)


def captum_method(model, method, x, target, args):
    """A callable computing `method` for the batch `x` with its library, and one that removes any
    hooks it put on the model."""
    if method in GRAD_CAM_LIBRARY:
        cam = GRAD_CAM_LIBRARY[method](model=model, target_layers=[model.layer4[1]])
        targets = [ClassifierOutputTarget(target)] * x.shape[0]
        return (lambda: cam(input_tensor=x, targets=targets)), cam.activations_and_grads.release
    if method == "feature_maps":
        modules = [model.relu, model.maxpool] + [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer] + [model.avgpool]
        captured = []
        handles = [
            module.register_forward_hook(lambda _m, _i, output: captured.append(output.detach())) for module in modules
        ]
        return (lambda: (captured.clear(), model(x))), lambda: [handle.remove() for handle in handles]
    return plain_method(model, method, x, target, args), lambda: None


def plain_method(model, method, x, target, args):
    """A callable computing `method` for the batch `x` with Captum (or RISE's definition)."""
    if method == "classify":
        return lambda: model(x)
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
    if method == "guided_grad_cam":
        guided = GuidedGradCam(model, model.layer4[1])
        return lambda: guided.attribute(x, target=target)
    if method == "occlusion":
        # The service's default windows: a seventh of the side (32 at 224), stride half of it.
        side = round(x.shape[-1] / 7)
        occlusion = Occlusion(model)
        return lambda: occlusion.attribute(
            x, sliding_window_shapes=(3, side, side), strides=(3, side // 2, side // 2), target=target,
            perturbations_per_eval=PERTURBATIONS_PER_EVAL,
        )
    if method == "feature_ablation":
        ablation, mask = FeatureAblation(model), grid_segments(x.shape[-1])
        return lambda: ablation.attribute(x, target=target, feature_mask=mask, perturbations_per_eval=PERTURBATIONS_PER_EVAL)
    if method == "gradient_shap":
        black = torch.from_numpy((-MEAN / STD).astype(np.float32)).reshape(1, 3, 1, 1).expand_as(x[:1])
        baselines = torch.cat([torch.zeros_like(x[:1]), black])
        shap = GradientShap(model)
        return lambda: shap.attribute(x, baselines=baselines, n_samples=args.samples, stdevs=0.1, target=target)
    if method == "rise":
        return lambda: rise(model, x, target)
    if method == "deep_lift":
        # Captum's DeepLift with the changes it needs on a ResNet, on a copy of the model.
        prepared, zeros = captum_deep_lift.prepare(copy.deepcopy(model)), torch.zeros_like(x)
        return lambda: captum_deep_lift.deep_lift(prepared, x, zeros, target)
    raise ValueError(method)


# Methods ort_method runs: one graph call per image, or per batch of steps or samples.
ORT_METHODS = ("classify", "feature_maps", "saliency", "grad_cam", "guided_backprop", "integrated_gradients", "smooth_grad")


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
    print(f"{'method':>22} {'batch':>5} {'library img/s':>13} {'ort img/s':>10}")
    for method in args.methods.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            x = image(batch, args.size)
            with torch.inference_mode(mode=method in ("classify", "feature_maps")):
                run, release = captum_method(model, method, torch.from_numpy(x), 0, args)
                captum_seconds = timed(run, args.duration)
                release()
            result = {
                "method": method,
                "batch": batch,
                "captum_images_per_s": batch / captum_seconds,
                "captum_ms_per_call": captum_seconds * 1e3,
            }
            if method in ORT_METHODS:
                ort_seconds = timed(ort_method(sessions, method, x, 0, args, layers), args.duration)
                result.update(ort_images_per_s=batch / ort_seconds, ort_ms_per_call=ort_seconds * 1e3)
            results.append(result)
            ort_column = f"{result['ort_images_per_s']:>10.2f}" if "ort_images_per_s" in result else f"{'—':>10}"
            print(f"{method:>22} {batch:>5} {result['captum_images_per_s']:>13.2f} {ort_column}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": args.threads, "torch": torch.__version__, "results": results}, out, indent=2)


if __name__ == "__main__":
    main()
