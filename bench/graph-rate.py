"""Images per second of ONNX graphs run in-process by ONNX Runtime (CPU), each graph and thread
setting in turn, the whole sequence repeated, so that alternated measurements share the machine's
state. Graphs are those `explaind augment` writes: the gradient graph gets its row inputs, the
others the image only; the fetched output is `grad/input` where there is one, else `logits`.
    python bench/graph-rate.py GRAPH.onnx [GRAPH.onnx …] [--batch 1] [--threads 2] [--seconds 5]
        [--repeats 3] [--spinning off,on,on-stop] [--profile 12]
--profile N also runs each graph once more under ONNX Runtime's profiler and prints the time per
op type and the N slowest nodes, in ms per run.
"""
import argparse
import collections
import json
import os
import time

import numpy as np
import onnxruntime as ort

SPINNING = {"off": ("0", None), "on": ("1", None), "on-stop": ("1", "1")}


def session(path, threads, spinning, profile=False):
    options = ort.SessionOptions()
    options.enable_profiling = profile
    options.intra_op_num_threads = threads
    allow, stop = SPINNING[spinning]
    options.add_session_config_entry("session.intra_op.allow_spinning", allow)
    if stop:
        options.add_session_config_entry("session.force_spinning_stop", stop)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def inputs(sess, batch):
    """The outputs to fetch and the inputs of `sess` at `batch` rows (a seeded image, rows' zeros)."""
    image = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    feeds = {sess.get_inputs()[0].name: image}
    for extra in sess.get_inputs()[1:]:
        feeds[extra.name] = np.zeros(batch, np.int64)
    names = [o.name for o in sess.get_outputs()]
    return (["grad/input"] if "grad/input" in names else ["logits"]), feeds


def rate(sess, batch, seconds):
    fetch, feeds = inputs(sess, batch)
    for _ in range(3):
        sess.run(fetch, feeds)
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        sess.run(fetch, feeds)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def profile(graph, args, top):
    sess = session(graph, args.threads, "on-stop", profile=True)
    fetch, feeds = inputs(sess, args.batch)
    runs = 10
    for _ in range(runs):
        sess.run(fetch, feeds)
    path = sess.end_profiling()
    with open(path) as file:
        events = json.load(file)
    os.remove(path)
    by_op, by_node = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1000 / runs
            by_node[event["name"][: -len("_kernel_time")]] += event["dur"] / 1000 / runs
    total = sum(by_op.values())
    print(f"{graph}, batch {args.batch}: {total:.2f} ms of kernels per run")
    for op, ms in by_op.most_common():
        print(f"  {op:24s} {ms:8.2f} ms  {ms / total * 100:5.1f} %")
    for node, ms in by_node.most_common(top):
        print(f"  node {node:60s} {ms:8.2f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graphs", nargs="+")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spinning", default="on-stop", help="comma-separated: off, on, on-stop")
    parser.add_argument("--profile", type=int, metavar="N", help="profile each graph; print its N slowest nodes")
    args = parser.parse_args()
    settings = args.spinning.split(",")
    rates = {}
    for _ in range(args.repeats):
        for graph in args.graphs:
            for spinning in settings:
                value = rate(session(graph, args.threads, spinning), args.batch, args.seconds)
                rates.setdefault((graph, spinning), []).append(value)
    for (graph, spinning), values in rates.items():
        print(f"{graph} spinning={spinning}: " + " ".join(f"{v:.2f}" for v in values) + f" img/s (mean {np.mean(values):.2f})")
    if args.profile is not None:
        for graph in args.graphs:
            profile(graph, args, args.profile)


if __name__ == "__main__":
    main()
