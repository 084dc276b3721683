"""fashion-mnist: the Debian `dataset-fashion-mnist` IDX files -> 28x28 grayscale PNGs.

The official test split is kept; a val slice (1/12 of train, ~5,000 images) is carved from train by a
hash of the id. Each image gets several caption templates of its class; meta["label"] is the class name
("ankle boot") and meta["class_id"] its index, so that prompt classification can be scored.
"""

import gzip
from functools import cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.corpora.builder import MEDIA, BuildReport, build, save_image
from training.data.manifest import Item, split_for
from training.errors import InputFileError

SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
LABELS = [
    "t-shirt",
    "trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
TEMPLATES = [
    "a photo of {}",
    "{}",
    "a black and white photo of {}",
    "a small grayscale picture of {}",
    "a product photo of {}",
]
VAL_FRACTION = 1 / 12


def with_article(label: str) -> str:
    """ "a sneaker", "an ankle boot", "a pair of trousers"."""
    if label.endswith("s") and label != "dress":
        return f"a pair of {label}"
    return f"an {label}" if label[0] in "aeiou" else f"a {label}"


def captions(label: str) -> list[str]:
    return [t.format(with_article(label)) for t in TEMPLATES]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array: (N,) labels or (N, rows, cols) images."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise InputFileError(path, None, f"cannot read IDX file: {e}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise InputFileError(path, None, "not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise InputFileError(path, None, f"IDX header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


@cache
def load_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28), labels (N,)) of one official split; cached per process."""
    images, labels = (read_idx(source / f) for f in FILES[split])
    if len(images) != len(labels):
        raise InputFileError(source / FILES[split][1], None, f"{len(labels)} labels for {len(images)} images")
    if labels.size and labels.max() >= len(LABELS):
        raise InputFileError(source / FILES[split][1], None, f"label {labels.max()} out of range 0-9")
    return images, labels


def make_item(key: str, out_dir: Path, source: Path = SOURCE) -> Item:
    """key "train/00012" -> media/train/00012.png and its Item."""
    split, index = key.split("/")
    images, labels = load_split(source, split)
    label = LABELS[int(labels[int(index)])]
    rel = Path(MEDIA) / f"{key}.png"
    save_image(Image.fromarray(images[int(index)], mode="L"), out_dir / rel)
    item_id = f"fashion-mnist/{key}"
    return Item(
        id=item_id,
        path=rel.as_posix(),
        captions=captions(label),
        split="test" if split == "test" else split_for(item_id, val=VAL_FRACTION, test=0.0),
        meta={"label": label, "class_id": int(labels[int(index)])},
    )


def available(source: Path = SOURCE) -> str | None:
    missing = [f for pair in FILES.values() for f in pair if not (source / f).is_file()]
    if missing:
        return f"missing {', '.join(missing)} in {source} (install the Debian package dataset-fashion-mnist)"
    return None


def prepare(out_dir: Path, limit: int | None = None, workers: int = 1, source: Path = SOURCE) -> BuildReport:
    """Writes every image of both official splits (resumable); --limit takes train and test alike."""
    sizes = {split: len(load_split(source, split)[1]) for split in FILES}  # loaded before workers fork
    # Interleaved (train/0, test/0, train/1, ...), so that a limited build still has a test split.
    keys = sorted((f"{s}/{i:05d}" for s, n in sizes.items() for i in range(n)), key=lambda k: (k[-5:], k))
    return build(
        "fashion-mnist", out_dir, keys, partial(make_item, source=source), limit=limit, workers=workers
    )
