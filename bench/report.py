"""Summarises one benchmark run (bench/run.sh) as a Markdown table: per method, the service's
throughput over gRPC against in-process ONNX Runtime on the same graph and against Captum, with
the ratios and the service's latency percentiles. Usage: report.py RESULTS_DIR"""

import json
import pathlib
import sys


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def main(directory):
    out = pathlib.Path(directory)
    baselines = {}
    for name in ("baselines-b1.json", "baselines-b16.json"):
        for row in (load(out / name) or {"results": []})["results"]:
            baselines[(row["method"], row["batch"])] = row
    print((out / "machine.txt").read_text())
    print("| method | callers (service) / batch (in-process) | service img/s | ORT in-process img/s | Captum img/s "
          "| service ÷ ORT | service ÷ Captum | service p50 / p90 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(out.glob("service-*.json")):
        report = load(path)
        method, callers = path.stem.removeprefix("service-").rsplit("-c", 1)
        key = (method.replace("-", "_"), int(callers))
        row = report["results"][0]
        service = row["throughput_rps"]
        base = baselines.get(key, {})
        ort, captum = base.get("ort_images_per_s"), base.get("captum_images_per_s")
        ratio = lambda other: f"{service / other:.2f}×" if other else "—"
        number = lambda value: f"{value:.2f}" if value else "—"
        print(f"| {method} | {callers} | {service:.2f} | {number(ort)} | {number(captum)} | {ratio(ort)} | {ratio(captum)} "
              f"| {row['p50_ms']:.0f} / {row['p90_ms']:.0f} / {row['p99_ms']:.0f} |")
    rss = out / "server-peak-rss.txt"
    if rss.exists():
        print(f"\nService peak RSS: {rss.read_text().split(':')[1].strip()}")


if __name__ == "__main__":
    main(sys.argv[1])
