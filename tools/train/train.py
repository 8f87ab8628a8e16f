"""Trains the embedded default model: torchvision's ResNet-18 topology at base width 16 (layer widths
16/32/64/128, so `layer2.1` has the 32 channels of a 4 x 8 grid) on tools/shapes pictures, 112 x 112
input, 10 classes; exports it with torch.onnx.export (legacy exporter, opset 17, BatchNorm folded)
and writes its labels beside it.

    python tools/train/train.py --out service/models/default.onnx

Reproducible from --seed (training set 0, validation set 1 are the shapes seeds; the held-out set 2
is left to `explain eval` and docs/fidelity.md). Prints the validation accuracy after each epoch
and the held-out accuracy of the exported weights. Needs torch, torchvision, onnx, numpy, Pillow.
"""

import argparse
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shapes"))
import shapes  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width divided: `width` channels after the stem, then
    width, 2 width, 4 width, 8 width. Module names, blocks and initialisation are torchvision's;
    `block`, `groups` and `width_per_group` as torchvision's (Bottleneck blocks in groups make a
    ResNeXt or a Wide ResNet)."""

    def __init__(self, width, layers, num_classes, block=BasicBlock, groups=1, width_per_group=64):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, groups, width_per_group
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)


def _chunk(job):
    seed, start, count = job
    pictures, _, classes = shapes.batch(seed, start, count)
    margin = (shapes.SIZE - shapes.VIEW) // 2
    return pictures[:, margin : margin + shapes.VIEW, margin : margin + shapes.VIEW], classes


def dataset(seed, count, workers):
    """The centre crops (what torchvision's evaluation transform gives the model) of pictures
    0..count of shapes set `seed`: uint8 [N, VIEW, VIEW, 3] and int64 [N]."""
    step = 250
    jobs = [(seed, start, min(step, count - start)) for start in range(0, count, step)]
    with Pool(workers) as pool:
        parts = pool.map(_chunk, jobs)
    return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


def to_tensor(pictures):
    """uint8 NHWC pictures -> normalised float32 NCHW, as the service preprocesses them."""
    x = (pictures.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def augment(x, generator):
    """Random horizontal and vertical flips and 90-degree turns (shape classes are invariant)."""
    turns = int(torch.randint(4, (1,), generator=generator))
    x = torch.rot90(x, turns, dims=(2, 3))
    if torch.rand(1, generator=generator) < 0.5:
        x = torch.flip(x, dims=(3,))
    return x


@torch.no_grad()
def accuracy(model, pictures, classes, batch=500):
    model.eval()
    correct = 0
    for start in range(0, len(classes), batch):
        logits = model(to_tensor(pictures[start : start + batch]))
        correct += int((logits.argmax(1) == torch.from_numpy(classes[start : start + batch])).sum())
    return correct / len(classes)


def export(model, path):
    model.eval()
    dummy = torch.zeros(1, 3, shapes.VIEW, shapes.VIEW)
    torch.onnx.export(
        model, dummy, str(path), dynamo=False, opset_version=17, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the ONNX file to write; its labels go to <stem>.labels.txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--train", type=int, default=30000, help="training pictures (shapes set 0)")
    parser.add_argument("--validation", type=int, default=2000, help="validation pictures (shapes set 1)")
    parser.add_argument("--held-out", type=int, default=2000, help="held-out pictures (shapes set 2) scored after export")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.004)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    began = time.time()
    train_x, train_y = dataset(0, args.train, args.threads)
    val_x, val_y = dataset(1, args.validation, args.threads)
    print(f"made {len(train_y)} training and {len(val_y)} validation pictures in {time.time() - began:.0f} s", flush=True)

    model = NarrowResNet(args.width, [2, 2, 2, 2], len(shapes.LABELS))
    steps_per_epoch = math.ceil(args.train / args.batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(args.train, generator=generator).numpy()
        seen, loss_sum, epoch_began = 0, 0.0, time.time()
        for step in range(steps_per_epoch):
            rows = order[step * args.batch : (step + 1) * args.batch]
            x = augment(to_tensor(train_x[rows]), generator)
            loss = F.cross_entropy(model(x), torch.from_numpy(train_y[rows]), label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            seen += len(rows)
            loss_sum += loss.item() * len(rows)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.4f}, validation accuracy "
            f"{accuracy(model, val_x, val_y):.4f} ({time.time() - epoch_began:.0f} s)",
            flush=True,
        )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export(model, out)
    (out.parent / f"{out.stem}.labels.txt").write_text("\n".join(shapes.LABELS) + "\n")
    held_x, held_y = dataset(2, args.held_out, args.threads)
    print(f"held-out accuracy (shapes set 2, {len(held_y)} pictures): {accuracy(model, held_x, held_y):.4f}")
    print(f"wrote {out} ({out.stat().st_size} bytes) in {time.time() - began:.0f} s")


if __name__ == "__main__":
    main()
