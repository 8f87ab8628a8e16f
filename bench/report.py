"""Summarises one benchmark run (bench/run.sh) as Markdown: per method, the service's throughput
over gRPC (one caller; three callers with engine batches of one image) against in-process ONNX
Runtime on the same graph and batch and against the method's library (Captum, pytorch-grad-cam),
with the ratios, latency percentiles and the wire overhead (client wall time minus the server's
total). A run of several rounds (files ending in -rN) is averaged: rates, p50s and wire overheads
are the means over rounds, p99s the largest.
Usage: report.py RESULTS_DIR"""

import collections
import json
import pathlib
import re
import statistics
import sys


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def merge(rows):
    """One row from the rounds' rows: means of the numbers, the largest p99."""
    merged = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
            merged[key] = max(values) if key.startswith("p99") else statistics.fmean(values)
    return merged


def wire_p50(row):
    """The service's median wire overhead in ms (the mean over rounds), if explain-bench gave one."""
    overheads = [entry["p50_ms"] for entry in (row.get("wire_overhead") or {}).values()]
    return statistics.fmean(overheads) if overheads else None


def main(directory):
    out = pathlib.Path(directory)
    rounds = collections.defaultdict(list)
    for path in sorted(out.glob("baselines-*.json")):
        for row in load(path)["results"]:
            rounds[(row["method"], row["batch"])].append(row)
    baselines = {key: merge(rows) for key, rows in rounds.items()}
    rounds = collections.defaultdict(list)
    for path in sorted(out.glob("service-*.json")):
        method, step = re.fullmatch(r"service-(.+)-c(\d+(?:-b\d+)?)(?:-r\d+)?", path.stem).groups()
        row = load(path)["results"][0]
        rounds[(method, step)].append(dict(row, wire_p50_ms=wire_p50(row)))
    service = {key: merge(rows) for key, rows in rounds.items()}
    ratio = lambda a, b: f"{a / b:.2f}×" if a and b else "—"
    number = lambda value: f"{value:.2f}" if value else "—"

    print((out / "machine.txt").read_text())
    print("Images per second; the service over gRPC with explain-bench on the same machine, the baselines in-process.\n")
    print("| method | service, 1 caller | p50 / p99 ms | wire p50 ms | service, 3 callers, batch 1 | ORT in-process "
          "| library | service ÷ ORT | service (1 caller) ÷ library |")
    print("|---|---|---|---|---|---|---|---|---|")
    methods = sorted({method for method, _ in service}, key=lambda m: list(ORDER).index(m) if m in ORDER else 99)
    for method in methods:
        one, busy = service.get((method, "1")), service.get((method, "3-b1"))
        base = baselines.get((method.replace("-", "_"), 1), {})
        ort, captum = base.get("ort_images_per_s"), base.get("captum_images_per_s")
        single = one["throughput_rps"] if one else None
        saturated = busy["throughput_rps"] if busy else None
        latency = f"{one['p50_ms']:.0f} / {one['p99_ms']:.0f}" if one else "—"
        wire = f"{one['wire_p50_ms']:.2f}" if one and one.get("wire_p50_ms") is not None else "—"
        # IG and SmoothGrad rows run as one batch of steps/samples rows both in the service (one
        # caller) and in-process; single-row methods compare the busy service at batch 1.
        multi_row = method in MULTI_ROW
        versus_ort = ratio(single, ort) + " ¹" if multi_row and ort else ratio(saturated, ort)
        print(f"| {method} | {number(single)} | {latency} | {wire} | {number(saturated) if not multi_row else '—'} "
              f"| {number(ort)} | {number(captum)} | {versus_ort} | {ratio(single, captum)} |")
    print("\n¹ one caller; both sides run the steps or samples as one batch (32 IG steps, 16 SmoothGrad samples).")
    many = service.get(("saliency", "16"))
    base = baselines.get(("saliency", 16), {})
    if many:
        print(f"\nSaliency, 16 concurrent callers (dynamic batching): {many['throughput_rps']:.2f} img/s, p50 "
              f"{many['p50_ms']:.0f} ms, p99 {many['p99_ms']:.0f} ms; in-process at batch 16: ONNX Runtime "
              f"{number(base.get('ort_images_per_s'))}, Captum {number(base.get('captum_images_per_s'))} img/s "
              f"(service ÷ Captum {ratio(many['throughput_rps'], base.get('captum_images_per_s'))}, "
              f"service ÷ ORT {ratio(many['throughput_rps'], base.get('ort_images_per_s'))}).")
    rss = out / "server-peak-rss.txt"
    if rss.exists():
        print(f"\nService peak RSS (default settings run): {rss.read_text().split(':')[1].strip()}")


ORDER = (
    "classify", "feature-maps", "saliency", "grad-cam", "guided-backprop", "integrated-gradients", "smooth-grad",
    "grad-cam-plus-plus", "xgrad-cam", "hires-cam", "layer-cam", "eigen-cam", "eigen-grad-cam", "guided-grad-cam",
    "score-cam", "ablation-cam", "occlusion", "feature-ablation", "gradient-shap", "rise",
)
# Methods of many rows per image, which the service batches itself: no three-caller step.
MULTI_ROW = (
    "integrated-gradients", "smooth-grad", "score-cam", "ablation-cam", "occlusion", "feature-ablation",
    "gradient-shap", "rise",
)


if __name__ == "__main__":
    main(sys.argv[1])
