"""A handful of generated images with captions: what the image test serves without the full demo.

Writes N PNGs (a coloured shape on a white ground) with sidecar .txt captions into DIR, e.g.
`python deploy/seed.py DIR --count 24`. `xmodal data import DIR` then makes a corpus of them, and
`xmodal index build --dir DIR` an index: all offline, in seconds on a tiny model.
"""

import argparse
import itertools
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (40, 60, 230), "yellow": (240, 210, 20)}
SHAPES = ("square", "circle", "triangle")


def draw(shape: str, rgb: tuple[int, int, int], size: int = 64, inset: int = 0) -> Image.Image:
    im = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(im)
    lo, hi = 8 + inset, size - 8 - inset
    if shape == "square":
        d.rectangle((lo, lo, hi, hi), fill=rgb)
    elif shape == "circle":
        d.ellipse((lo, lo, hi, hi), fill=rgb)
    else:
        d.polygon([(size // 2, lo), (hi, hi), (lo, hi)], fill=rgb)
    return im


def write(out: Path, count: int) -> list[Path]:
    """`count` images cycling through every (colour, shape), insets growing per cycle; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    combos = list(itertools.product(COLOURS, SHAPES))
    paths = []
    for i in range(count):
        colour, shape = combos[i % len(combos)]
        path = out / f"{colour}-{shape}-{i:03d}.png"
        draw(shape, COLOURS[colour], inset=2 * (i // len(combos))).save(path)
        path.with_suffix(".txt").write_text(f"a {colour} {shape}\n")
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--count", type=int, default=24)
    args = ap.parse_args()
    print(f"{len(write(args.dir, args.count))} images in {args.dir}")


if __name__ == "__main__":
    main()
