"""The experiment behind docs/benchmarks.md's "phase-split inside the network: slower": rewrites
every remaining strided ConvTranspose of a gradient graph from `explaind augment` (one group,
equal strides, constant weights) as the phase-split correlation the service uses for the image's
own convolution (a Conv giving the s² phases, DepthToSpace in CRD order, a Slice), so the two
graphs can be timed with bench/graph-rate.py.
    python bench/phase-split-all.py GRADIENT.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper as nh


def attribute(node, name, default=None):
    found = [a for a in node.attribute if a.name == name]
    return helper.get_attribute_value(found[0]) if found else default


def split(node, weights, added):
    strides, dilations = attribute(node, "strides"), attribute(node, "dilations", [1, 1])
    pads, extra = attribute(node, "pads"), attribute(node, "output_padding", [0, 0])
    s = strides[0]
    out, channels, kh, kw = weights.shape
    taps = lambda size, d: [((k * d) % s, (k * d) // s) for k in range(size)]
    rows, cols = taps(kh, dilations[0]), taps(kw, dilations[1])
    lh, lw = max(m for _, m in rows) + 1, max(m for _, m in cols) + 1
    phase = np.zeros((channels * s * s, out, lh, lw), np.float32)
    for c in range(channels):
        for y, (rh, mh) in enumerate(rows):
            for x, (rw, mw) in enumerate(cols):
                phase[(c * s + rh) * s + rw, :, lh - 1 - mh, lw - 1 - mw] = weights[:, c, y, x]
    name = node.output[0]
    # Rows beyond the gradient's: ceil((K−1)d + 1 − pad_end + output_padding) / s) − 1, at least 0.
    end = [max(0, -(-((k - 1) * d + 1 - p + e) // s) - 1) for k, d, p, e in zip((kh, kw), dilations, pads[2:], extra)]
    # The input's size is O·s + offset: the transposed convolution's output size.
    offset = [(k - 1) * d + 1 - pb - pe + e - s + pb for k, d, pb, pe, e in zip((kh, kw), dilations, pads[:2], pads[2:], extra)]
    for suffix, values in [("w", phase), ("s", np.array([s, s], np.int64)), ("offset", np.array(offset, np.int64)),
                           ("begin", np.array(pads[:2], np.int64)), ("axes", np.array([2, 3], np.int64))]:
        added.append(nh.from_array(values, f"{name}/phase_{suffix}"))
    p = lambda suffix: f"{name}/phase_{suffix}"
    return [
        helper.make_node("Conv", [node.input[0], p("w")], [p("conv")], kernel_shape=[lh, lw], pads=[lh - 1, lw - 1, *end]),
        helper.make_node("DepthToSpace", [p("conv")], [p("interleaved")], blocksize=s, mode="CRD"),
        helper.make_node("Shape", [node.input[0]], [p("shape")], start=2),
        helper.make_node("Mul", [p("shape"), p("s")], [p("scaled")]),
        helper.make_node("Add", [p("scaled"), p("offset")], [p("end")]),
        helper.make_node("Slice", [p("interleaved"), p("begin"), p("end"), p("axes")], [name]),
    ]


def main():
    source, target = sys.argv[1:3]
    model = onnx.load(source)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes, added, count = [], [], 0
    for node in graph.node:
        strides = attribute(node, "strides", [1, 1])
        if (node.op_type == "ConvTranspose" and node.input[1] in initializers and attribute(node, "group", 1) == 1
                and strides[0] == strides[1] > 1):
            nodes += split(node, nh.to_array(initializers[node.input[1]]), added)
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    onnx.save(model, target)
    print(f"{count} ConvTranspose nodes phase-split")


if __name__ == "__main__":
    main()
