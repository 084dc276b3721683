"""Tiny seeded corpora for trainer and evaluation tests: coloured shapes drawn with PIL, captioned."""

from pathlib import Path

from PIL import Image, ImageDraw

from training.data.manifest import QA, Item, write_manifest
from training.home import corpora_dir

COLORS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 210, 20)}
SHAPES = ("circle", "square", "triangle")


def draw(shape: str, rgb: tuple, size: int = 40, offset: int = 0) -> Image.Image:
    im = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(im)
    box = (6 + offset, 6 + offset, size - 10 + offset, size - 10 + offset)
    if shape == "circle":
        d.ellipse(box, fill=rgb)
    elif shape == "square":
        d.rectangle(box, fill=rgb)
    else:
        d.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=rgb)
    return im


def make_corpus(name: str = "shapes", copies: int = 4, test_copies: int = 1) -> Path:
    """XMODAL_HOME/corpora/<name>/manifest.jsonl: every colour x shape, `copies` train and
    `test_copies` test items each (shifted drawings), with a caption and one QA pair."""
    root = corpora_dir() / name
    (root / "media").mkdir(parents=True, exist_ok=True)
    items = []
    for color, rgb in COLORS.items():
        for shape in SHAPES:
            for k in range(copies + test_copies):
                item_id = f"{color}-{shape}-{k}"
                draw(shape, rgb, offset=k).save(root / "media" / f"{item_id}.png")
                items.append(
                    Item(
                        id=item_id,
                        path=f"media/{item_id}.png",
                        captions=[f"a {color} {shape}", f"{shape} in {color}"],
                        split="train" if k < copies else "test",
                        meta={"label": shape},
                        qa=[QA(question="what color is the shape?", answer=color)],
                    )
                )
    write_manifest(root / "manifest.jsonl", items)
    return root / "manifest.jsonl"
