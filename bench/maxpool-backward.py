"""The experiment behind docs/benchmarks.md's "tried and dropped" MaxPool backward: ResNet's stem
pool (3 × 3, stride 2, pad 1 on 64 × 112 × 112 after a ReLU, so with ties) and its backward pass
two ways, in stand-alone ONNX graphs run by ONNX Runtime (CPU, 2 threads):
  A. what the service emits: MaxPool with indices, then ScatterElements (add) into zeros;
  B. no indices: nine strided slices of the padded input, first-maximum masks (scan order, as
     torch and ONNX Runtime choose among ties), and the masked gradients summed phase by phase,
     interleaved with DepthToSpace.
Prints each one's time per run and the largest difference between their input gradients.
    python bench/maxpool-backward.py [--batch 1] [--seconds 3]
"""
import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnx import numpy_helper as nh

CHANNELS, SIZE, KERNEL, STRIDE, PAD = 64, 112, 3, 2, 1
OUT = SIZE // STRIDE
PADDED = SIZE + 2 * PAD


def with_indices():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[KERNEL] * 2, strides=[STRIDE] * 2, pads=[PAD] * 4),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
        helper.make_node("Reshape", ["zeros", "flat"], ["zeros_flat"]),
        helper.make_node("Reshape", ["idx", "flat"], ["idx_flat"]),
        helper.make_node("Reshape", ["g", "flat"], ["g_flat"]),
        helper.make_node("ScatterElements", ["zeros_flat", "idx_flat", "g_flat"], ["sum_flat"], axis=0, reduction="add"),
        helper.make_node("Reshape", ["sum_flat", "shape"], ["gx"]),
    ]
    return nodes, [nh.from_array(np.array([-1], np.int64), "flat")]


def first_maxima():
    const = lambda values, name: nh.from_array(np.array(values, np.int64), name)
    init = [
        const([0, 0, PAD, PAD, 0, 0, PAD, PAD], "pads"), nh.from_array(np.array(-np.inf, np.float32), "ninf"),
        const([2, 3], "axes"), const([STRIDE, STRIDE], "steps"), nh.from_array(np.array(0, np.float32), "zero"),
        const([PAD, PAD], "crop_begin"), const([PAD + SIZE, PAD + SIZE], "crop_end"),
    ]
    nodes = [
        helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[KERNEL] * 2, strides=[STRIDE] * 2, pads=[PAD] * 4),
        helper.make_node("Pad", ["x", "pads", "ninf"], ["xp"], mode="constant"),
    ]
    phases, seen = {}, None
    for kh in range(KERNEL):
        for kw in range(KERNEL):
            t = f"{kh}{kw}"
            end = [kh + (OUT - 1) * STRIDE + 1, kw + (OUT - 1) * STRIDE + 1]
            init += [const([kh, kw], "begin" + t), const(end, "end" + t)]
            nodes += [helper.make_node("Slice", ["xp", "begin" + t, "end" + t, "axes", "steps"], ["v" + t]),
                      helper.make_node("Equal", ["v" + t, "y"], ["eq" + t])]
            if seen is None:
                first, seen = "eq" + t, "eq" + t
            else:
                nodes += [helper.make_node("Not", [seen], ["unseen" + t]),
                          helper.make_node("And", ["eq" + t, "unseen" + t], ["first" + t]),
                          helper.make_node("Or", [seen, "eq" + t], ["seen" + t])]
                first, seen = "first" + t, "seen" + t
            shift_h, shift_w, rows = kh // STRIDE, kw // STRIDE, PADDED // STRIDE
            init.append(const([0, 0, shift_h, shift_w, 0, 0, rows - OUT - shift_h, rows - OUT - shift_w], "shift" + t))
            nodes += [helper.make_node("Where", [first, "g", "zero"], ["c" + t]),
                      helper.make_node("Pad", ["c" + t, "shift" + t], ["placed" + t])]
            phases.setdefault((kh % STRIDE, kw % STRIDE), []).append("placed" + t)
    order = [f"phase{a}{b}" for a in range(STRIDE) for b in range(STRIDE)]
    nodes += [helper.make_node("Sum", phases[(int(p[5]), int(p[6]))], [p]) for p in order]
    nodes += [helper.make_node("Concat", order, ["phases"], axis=1),
              helper.make_node("DepthToSpace", ["phases"], ["full"], blocksize=STRIDE, mode="DCR"),
              helper.make_node("Slice", ["full", "crop_begin", "crop_end", "axes"], ["gx"])]
    return nodes, init


def session(nodes, init, batch):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, CHANNELS, SIZE, SIZE]),
              helper.make_tensor_value_info("g", TensorProto.FLOAT, [batch, CHANNELS, OUT, OUT])]
    outputs = [helper.make_tensor_value_info("gx", TensorProto.FLOAT, [batch, CHANNELS, SIZE, SIZE])]
    model = helper.make_model(helper.make_graph(nodes, "pool", inputs, outputs, init),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((args.batch, CHANNELS, SIZE, SIZE), dtype=np.float32), 0)
    x[:, :, :20, :20] = 0  # whole windows of ties
    feeds = {"x": x, "g": rng.standard_normal((args.batch, CHANNELS, OUT, OUT), dtype=np.float32)}
    results = {}
    for name, build in [("A: indices and scatter", with_indices), ("B: first-maximum masks", first_maxima)]:
        sess = session(*build(), args.batch)
        results[name] = sess.run(None, feeds)[0]
        for _ in range(5):
            sess.run(None, feeds)
        start, runs = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            sess.run(None, feeds)
            runs += 1
        print(f"{name}: {(time.perf_counter() - start) / runs * 1000:.2f} ms per run at batch {args.batch}")
    a, b = results.values()
    print(f"largest difference between the input gradients: {np.abs(a - b).max():.3g}")


if __name__ == "__main__":
    main()
