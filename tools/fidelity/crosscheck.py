"""Cross-checks `explain eval`'s pointing game and relevance mass against Quantus 0.6 on the same
maps. The maps are the attribution tensors `explain run --npy` wrote for a tools/shapes folder;
they are reduced to one value per pixel as `explain eval` does (sum of absolute values over
channels), the masks are cropped to the model's view, and Quantus's `PointingGame` and
`RelevanceMassAccuracy` score them. Prints both means beside `explain eval --json`'s and exits
non-zero if they differ by more than 1e-6.

    python tools/fidelity/crosscheck.py DATASET NPY_DIR TENSOR EVAL_JSON

TENSOR is the attribution's file suffix, e.g. `attribution.grad_cam.layer4.1.upsampled`. Needs
numpy, Pillow and quantus==0.6.0.
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import quantus
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shapes"))
import shapes  # noqa: E402


def main():
    dataset, npy_dir, tensor, eval_json = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    margin = (shapes.SIZE - shapes.VIEW) // 2
    maps, masks, classes = [], [], []
    with open(dataset / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = Path(row["image"]).stem
            attribution = np.load(npy_dir / f"{stem}.{tensor}.npy")[0]  # [C, H, W]
            maps.append(np.abs(attribution).sum(axis=0, keepdims=True))
            mask = np.asarray(Image.open(dataset / row["mask"]).convert("L")) >= 128
            masks.append(mask[margin : margin + shapes.VIEW, margin : margin + shapes.VIEW][None])
            classes.append(int(row["class_index"]))
    a, s = np.stack(maps).astype(np.float32), np.stack(masks).astype(np.float32)
    x, y = np.zeros((len(a), 3, *a.shape[2:]), dtype=np.float32), np.array(classes)
    common = dict(abs=True, normalise=False, disable_warnings=True)
    pointing = float(np.mean(quantus.PointingGame(**common)(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)))
    mass = float(np.mean(quantus.RelevanceMassAccuracy(**common)(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)))
    ours = json.loads(eval_json.read_text())
    print(f"images          {len(a)}")
    print(f"pointing game   quantus {pointing:.6f}   explain eval {ours['pointing_game']:.6f}")
    print(f"relevance mass  quantus {mass:.6f}   explain eval {ours['relevance_mass']:.6f}")
    if abs(pointing - ours["pointing_game"]) > 1e-6 or abs(mass - ours["relevance_mass"]) > 1e-6:
        sys.exit("explain eval and Quantus disagree")


if __name__ == "__main__":
    main()
