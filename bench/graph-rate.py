"""Images per second of ONNX graphs run in-process by ONNX Runtime (CPU), each graph and thread
setting in turn, the whole sequence repeated, so that alternated measurements share the machine's
state. Graphs are those `explaind augment` writes: the gradient graph gets its row inputs, the
others the image only; the fetched output is `grad/input` where there is one, else `logits`.
    python bench/graph-rate.py GRAPH.onnx [GRAPH.onnx …] [--batch 1] [--threads 2] [--seconds 5]
        [--repeats 3] [--spinning off,on,on-stop]
"""
import argparse
import time

import numpy as np
import onnxruntime as ort

SPINNING = {"off": ("0", None), "on": ("1", None), "on-stop": ("1", "1")}


def session(path, threads, spinning):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    allow, stop = SPINNING[spinning]
    options.add_session_config_entry("session.intra_op.allow_spinning", allow)
    if stop:
        options.add_session_config_entry("session.force_spinning_stop", stop)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def rate(sess, batch, seconds):
    image = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    feeds = {sess.get_inputs()[0].name: image}
    for extra in sess.get_inputs()[1:]:
        feeds[extra.name] = np.zeros(batch, np.int64)
    names = [o.name for o in sess.get_outputs()]
    fetch = ["grad/input"] if "grad/input" in names else ["logits"]
    for _ in range(3):
        sess.run(fetch, feeds)
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        sess.run(fetch, feeds)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graphs", nargs="+")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spinning", default="on-stop", help="comma-separated: off, on, on-stop")
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


if __name__ == "__main__":
    main()
