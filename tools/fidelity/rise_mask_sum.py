"""How much of a RISE map is its masks' own sum: the mean Spearman rank correlation between each map
of a folder (`explain run --method rise --npy` writes `<name>.attribution.rise.npy`) and the plain
sum of the masks the service drew for the same seed (tools/references/seeded.py reproduces them).
A map that only reflected the model would not correlate with a sum that ignores it.

    explain run samples/shapes/images/*.png --method rise --out /tmp/rise --npy
    python tools/fidelity/rise_mask_sum.py /tmp/rise [--masks 500 --cells 8 --keep 0.5 --seed 0]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "references"))
from seeded import Draws  # noqa: E402


def mask_sum(size, masks, cells, keep, seed):
    """Σ of the service's masks for `seed`, [size, size] (square inputs)."""
    draws, cell = Draws(seed), -(-size // cells)
    total = torch.zeros(size, size, dtype=torch.float64)
    for _ in range(masks):
        grid = torch.from_numpy((draws.uniform(cells * cells) < keep).astype(np.float64)).reshape(1, 1, cells, cells)
        down, across = (min(int(draws.uniform() * cell), cell - 1) for _ in range(2))
        upsampled = F.interpolate(grid, size=((cells + 1) * cell,) * 2, mode="bilinear", align_corners=False)[0, 0]
        total += upsampled[down : down + size, across : across + size]
    return total.numpy()


def ranks(values):
    order = np.argsort(values.ravel(), kind="stable")
    ranked = np.empty(order.size)
    ranked[order] = np.arange(order.size)
    return ranked


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--masks", type=int, default=500)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    maps = [np.load(path)[0, 0] for path in sorted(args.folder.glob("*.attribution.rise.npy"))]
    if not maps:
        sys.exit(f"no *.attribution.rise.npy in {args.folder}")
    total = ranks(mask_sum(maps[0].shape[0], args.masks, args.cells, args.keep, args.seed))
    correlations = [np.corrcoef(ranks(m), total)[0, 1] for m in maps]
    print(f"{len(maps)} maps: Spearman with the mask sum mean {np.mean(correlations):.3f}, "
          f"min {np.min(correlations):.3f}, max {np.max(correlations):.3f}")


if __name__ == "__main__":
    main()
