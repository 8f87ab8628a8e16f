"""The benchmark's PyTorch models, with the same weights the service serves.

An ONNX ResNet export (the legacy exporter's BatchNorm-folded graph) becomes a torchvision ResNet
whose convolutions hold the folded weights and whose BatchNorms only add the folded biases
(weight 1, running mean 0, running variance 1 - eps). The legacy exporter names nodes after the
modules they came from, so weights are mapped by node name. Used by baselines.py only."""

import onnx
import torch
import torchvision
from onnx import numpy_helper


def _module_path(node_name):
    """ "/layer2/layer2.0/downsample/downsample.0/Conv" -> "layer2.0.downsample.0": each scope
    either refines the one before it ("layer2" -> "layer2.0") or names a child."""
    path = []
    for scope in node_name.strip("/").split("/")[:-1]:
        if path and scope.startswith(path[-1] + "."):
            path[-1] = scope
        else:
            path.append(scope)
    return ".".join(path)


def resnet_from_onnx(path, arch="resnet18", num_classes=None):
    """A torchvision ResNet (float32, eval mode) with the weights of the ONNX export at `path`."""
    model_proto = onnx.load(path)
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model_proto.graph.initializer}
    fc = next(n for n in model_proto.graph.node if n.op_type == "Gemm")
    classes = num_classes or weights[fc.input[1]].shape[0]
    model = getattr(torchvision.models, arch)(num_classes=classes)
    modules = dict(model.named_modules())
    for node in model_proto.graph.node:
        if node.op_type != "Conv":
            continue
        path_ = _module_path(node.name)
        conv = modules[path_]
        conv.weight.data.copy_(weights[node.input[1]])
        bn_path = path_.replace("conv", "bn") if "conv" in path_ else path_[:-1] + "1"
        bn = modules[bn_path]
        bn.weight.data.fill_(1.0)
        bn.bias.data.copy_(weights[node.input[2]])
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    model.fc.weight.data.copy_(weights[fc.input[1]])
    model.fc.bias.data.copy_(weights[fc.input[2]])
    return model.eval()
