"""A Python client of explain.v1, its stubs generated from the proto with grpcio-tools: calls
GetModelInfo and Explain (float16 tensors, a top-k channel selection) on a running server and
checks the results against the torch references. Usage:
    PYTHONPATH=STUBS explain_client.py HOST:PORT REFS.npz
Prints one JSON line; exits non-zero when a check fails."""

import json
import sys

import grpc
import numpy as np
from explain.v1 import explain_pb2 as pb
from explain.v1 import explain_pb2_grpc


def reassemble(chunks):
    """The tensors of an Explain stream, by name, as float32 arrays."""
    tensors = {}
    for name, parts in chunks.items():
        first = parts[0]
        data = b"".join(part.data for part in sorted(parts, key=lambda part: part.offset))
        assert len(data) == first.total_bytes, f"{name}: {len(data)} of {first.total_bytes} bytes"
        dtype = {pb.DATA_TYPE_FLOAT32: "<f4", pb.DATA_TYPE_FLOAT16: "<f2"}[first.dtype]
        tensors[name] = (np.frombuffer(data, dtype=dtype).astype(np.float32).reshape(first.shape), list(first.channel_indices))
    return tensors


def main(address, refs_path):
    refs = np.load(refs_path)
    image = refs["input"][0:1].astype("<f4")
    target = int(refs["target"][0])
    stub = explain_pb2_grpc.ExplainServiceStub(grpc.insecure_channel(address))
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    request = pb.ExplainRequest(
        image=pb.Image(tensor=pb.Tensor(shape=list(image.shape), dtype=pb.DATA_TYPE_FLOAT32, data=image.tobytes())),
        target=pb.Target(class_index=target),
        attributions=[pb.AttributionSpec(saliency=pb.Saliency())],
        feature_maps=[pb.FeatureMapSpec(layer="layer2.1", top_k=4)],
        encoding=pb.DATA_TYPE_FLOAT16,
    )
    kinds, chunks = [], {}
    for response in stub.Explain(request):
        kind = response.WhichOneof("item")
        kinds.append(kind)
        if kind == "tensor_chunk":
            chunks.setdefault(response.tensor_chunk.name, []).append(response.tensor_chunk)
    tensors = reassemble(chunks)
    saliency, _ = tensors["attribution/saliency"]
    maps, channels = tensors["activation/layer2.1"]
    expected_maps = refs["act.layer2.1"][0:1][:, channels]
    relative = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    result = {
        "layers": len(info.layers),
        "stream": [kinds[0], kinds[-1]],
        "saliency_relative_l2": relative(saliency, refs["grad.input"][0:1]),
        "channels": channels,
        "layer2_1_relative_l2": relative(maps, expected_maps),
    }
    print(json.dumps(result))
    ok = (
        result["layers"] == 11
        and result["stream"] == ["prediction", "summary"]
        and result["saliency_relative_l2"] < 2e-3
        and len(channels) == 4
        and result["layer2_1_relative_l2"] < 2e-3
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
