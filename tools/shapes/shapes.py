"""Labelled pictures of shapes with object masks: the data the default model is trained and
evaluated on, where we know where the object is.

Each picture shows one large shape (its class) over a textured or noisy background, with up to two
small distractor shapes of other classes. The mask is the large shape's silhouette (holes filled:
a ring's mask is its disc). Picture `index` of seed `seed` depends only on those two numbers, so a
set is reproducible piece by piece. The large shape lies inside the centre crop the model sees
(`view` pixels of a `size`-pixel picture: torchvision's evaluation transform crops 112 of 128).

    python tools/shapes/shapes.py --out samples/shapes --count 1000 --seed 2

writes `images/NNNNN.png`, `masks/NNNNN.png` (255 on the object) and `index.csv` (image, mask,
class index, label); `labels.txt` lists the classes in index order. Needs numpy and Pillow.
"""

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABELS = ["circle", "square", "triangle", "star", "cross", "ring", "ellipse", "hexagon", "heart", "arrow"]
SIZE = 128  # picture side, pixels
VIEW = 112  # the centre crop the model sees
SUPERSAMPLE = 4  # anti-aliasing factor of the drawn shapes
MAIN_RADIUS = (28.0, 46.0)  # the labelled shape's outer radius, pixels
DISTRACTOR_RADIUS = (7.0, 12.0)
MIN_CONTRAST = 90.0  # least distance (RGB, 0-255) between a shape's colour and the ground under it


def _regular(sides, radius=1.0, phase=0.0):
    return [(radius * math.cos(phase + 2 * math.pi * k / sides), radius * math.sin(phase + 2 * math.pi * k / sides)) for k in range(sides)]


def _star():
    points = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.5
        a = -math.pi / 2 + math.pi * k / 5
        points.append((r * math.cos(a), r * math.sin(a)))
    return points


def _heart():
    points = []
    for k in range(96):
        t = 2 * math.pi * k / 96
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x / 17.0, (y + 2.5) / 17.0))
    return points


# Each class: outlines in unit coordinates (radius about 1). The first is filled; the others, if
# any, are holes cut out of the picture (but not out of the mask).
OUTLINES = {
    "circle": [_regular(96)],
    "square": [[(-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78)]],
    "triangle": [_regular(3, 1.0, -math.pi / 2)],
    "star": [_star()],
    "cross": [[(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]],
    "ring": [_regular(96), _regular(96, 0.55)],
    "ellipse": [[(math.cos(2 * math.pi * k / 96), 0.5 * math.sin(2 * math.pi * k / 96)) for k in range(96)]],
    "hexagon": [_regular(6)],
    "heart": [_heart()],
    "arrow": [[(-1, -0.3), (0.1, -0.3), (0.1, -0.8), (1, 0), (0.1, 0.8), (0.1, 0.3), (-1, 0.3)]],
}


def _place(outline, centre, radius, angle):
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = centre
    return [((cx + radius * (x * c - y * s)) * SUPERSAMPLE, (cy + radius * (x * s + y * c)) * SUPERSAMPLE) for x, y in outline]


def _coverage(label, centre, radius, angle):
    """(paint, silhouette): anti-aliased coverage in [0, 1] of the shape's paint and of its
    silhouette with holes filled, each [SIZE, SIZE]."""
    big = SIZE * SUPERSAMPLE
    outer, *holes = OUTLINES[label]
    silhouette = Image.new("L", (big, big), 0)
    ImageDraw.Draw(silhouette).polygon(_place(outer, centre, radius, angle), fill=255)
    paint = silhouette.copy()
    for hole in holes:
        ImageDraw.Draw(paint).polygon(_place(hole, centre, radius, angle), fill=0)

    def shrink(image):
        return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32) / 255.0

    return shrink(paint), shrink(silhouette)


def _background(rng):
    """A [SIZE, SIZE, 3] float ground: a smooth two-colour blend, then a texture, then noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle), 0, 1)[..., None]
    ground = a * (1 - t) + b * t
    kind = rng.integers(4)
    if kind == 0:  # stripes
        period, phase, theta = rng.uniform(6, 24), rng.uniform(0, 2 * math.pi), rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) * SIZE / period + phase)
        ground = ground + rng.uniform(10, 40) * wave[..., None]
    elif kind == 1:  # checks
        cell = rng.integers(6, 20)
        checks = ((np.arange(SIZE)[:, None] // cell + np.arange(SIZE)[None, :] // cell) % 2) * 2.0 - 1.0
        ground = ground + rng.uniform(10, 35) * checks[..., None]
    elif kind == 2:  # blotches: coarse noise, smoothly enlarged
        coarse = rng.normal(0, 1, (8, 8, 3)).astype(np.float32)
        blotch = Image.fromarray(((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8))
        blotch = np.asarray(blotch.resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0 - 0.5
        ground = ground + rng.uniform(30, 80) * blotch
    return ground + rng.normal(0, rng.uniform(2, 18), (SIZE, SIZE, 3))


def _colour(rng, under):
    """A colour at least MIN_CONTRAST away from `under` (tries a bounded number of times)."""
    best, best_distance = None, -1.0
    for _ in range(32):
        colour = rng.uniform(0, 255, 3)
        distance = float(np.linalg.norm(colour - under))
        if distance >= MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def make(seed, index):
    """Picture `index` of set `seed`: (rgb uint8 [SIZE, SIZE, 3], mask bool [SIZE, SIZE], class
    index). The class cycles through LABELS so that every set is balanced."""
    rng = np.random.default_rng([seed, index])
    label = index % len(LABELS)
    picture = _background(rng)
    margin = (SIZE - VIEW) / 2
    radius = rng.uniform(*MAIN_RADIUS)
    # The whole shape lies inside the model's view, a few pixels from its edge.
    low, high = margin + radius + 2, SIZE - margin - radius - 2
    centre = (rng.uniform(low, high), rng.uniform(low, high))
    paint, silhouette = _coverage(LABELS[label], centre, radius, rng.uniform(0, 2 * math.pi))
    mask = silhouette > 0.5
    taken = mask.copy()
    shapes = [(paint, mask)]
    for _ in range(rng.integers(0, 3)):
        other = int(rng.choice([k for k in range(len(LABELS)) if k != label]))
        r = rng.uniform(*DISTRACTOR_RADIUS)
        for _attempt in range(16):  # a distractor never touches the large shape or another one
            c = (rng.uniform(r + 1, SIZE - r - 1), rng.uniform(r + 1, SIZE - r - 1))
            d_paint, d_silhouette = _coverage(LABELS[other], c, r, rng.uniform(0, 2 * math.pi))
            if not (taken & (d_silhouette > 0)).any():
                taken |= d_silhouette > 0
                shapes.append((d_paint, d_silhouette > 0))
                break
    for shape_paint, shape_mask in shapes:
        colour = _colour(rng, picture[shape_mask].mean(axis=0))
        shade = rng.uniform(0.85, 1.15, (SIZE, SIZE, 1)).astype(np.float32) if rng.random() < 0.5 else 1.0
        alpha = shape_paint[..., None]
        picture = picture * (1 - alpha) + np.clip(colour * shade, 0, 255) * alpha
    return np.clip(picture, 0, 255).round().astype(np.uint8), mask, label


def batch(seed, start, count):
    """Pictures start..start+count of set `seed` as (uint8 [N, SIZE, SIZE, 3], bool [N, SIZE,
    SIZE], int64 [N])."""
    items = [make(seed, i) for i in range(start, start + count)]
    return (
        np.stack([p for p, _, _ in items]),
        np.stack([m for _, m, _ in items]),
        np.array([c for _, _, c in items], dtype=np.int64),
    )


def write(out, seed, count, start=0):
    """Writes pictures start..start+count of set `seed` under `out` (see the module's doc)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "labels.txt").write_text("\n".join(LABELS) + "\n")
    with open(out / "index.csv", "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["image", "mask", "class_index", "label"])
        for i in range(start, start + count):
            picture, mask, label = make(seed, i)
            name = f"{i:05d}.png"
            Image.fromarray(picture).save(out / "images" / name, optimize=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / name, optimize=True)
            table.writerow([f"images/{name}", f"masks/{name}", label, LABELS[label]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write images/, masks/, index.csv, labels.txt into")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="index of the first picture")
    parser.add_argument("--seed", type=int, default=2, help="the set: training uses 0, validation 1, held-out evaluation 2")
    args = parser.parse_args()
    write(args.out, args.seed, args.count, args.start)


if __name__ == "__main__":
    main()
