"""fashion-mnist from tiny IDX files written here: pixels, labels, captions and the official splits."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.corpora import fashion_mnist
from training.data.manifest import load_manifest, media_path
from training.errors import InputFileError


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", n) for n in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def tiny_source(root: Path, n_train: int = 30, n_test: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    data = {}
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / fashion_mnist.FILES[split][0], images)
        write_idx(root / fashion_mnist.FILES[split][1], labels)
        data[split] = images, labels
    return data


def test_prepare_matches_the_idx_arrays(tmp_path):
    data = tiny_source(tmp_path / "src")
    report = fashion_mnist.prepare(tmp_path / "out", source=tmp_path / "src", workers=2)
    manifest = tmp_path / "out/manifest.jsonl"
    items = load_manifest(manifest)
    assert report.total == len(items) == 36
    assert report.counts["test"] == 6 and report.counts.get("val", 0) + report.counts["train"] == 30
    for it in items:
        split, index = it.id.split("/")[1:]
        images, labels = data[split]
        assert (it.split == "test") == (split == "test")
        assert np.array_equal(np.asarray(Image.open(media_path(manifest, it))), images[int(index)])
        assert it.meta["class_id"] == labels[int(index)]
        assert it.meta["label"] == fashion_mnist.LABELS[labels[int(index)]]
        assert len(it.captions) == len(fashion_mnist.TEMPLATES)
        assert it.captions[0] == f"a photo of {fashion_mnist.with_article(it.meta['label'])}"


def test_val_slice_is_about_a_twelfth_of_train(tmp_path):
    tiny_source(tmp_path / "src", n_train=600, n_test=1)
    report = fashion_mnist.prepare(tmp_path / "out", source=tmp_path / "src", limit=600)
    assert 25 < report.counts["val"] < 75  # expected 50, sd 7


def test_limit_keeps_both_splits(tmp_path):
    tiny_source(tmp_path / "src")
    report = fashion_mnist.prepare(tmp_path / "out", source=tmp_path / "src", limit=6)
    assert report.counts["test"] == 3 and report.limit == 6


def test_articles():
    assert fashion_mnist.with_article("ankle boot") == "an ankle boot"
    assert fashion_mnist.with_article("trousers") == "a pair of trousers"
    assert fashion_mnist.with_article("dress") == "a dress"


def test_bad_idx_files(tmp_path):
    bad = tmp_path / "x.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    with pytest.raises(InputFileError, match="bad magic"):
        fashion_mnist.read_idx(bad)
    write_idx(bad, np.zeros((3, 2, 2)))
    with gzip.open(bad, "rb") as f:
        body = f.read()
    with gzip.open(bad, "wb") as f:
        f.write(body[:-1])
    with pytest.raises(InputFileError, match=r"x.gz: IDX header says \(3, 2, 2\) but holds 11 bytes"):
        fashion_mnist.read_idx(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(InputFileError, match="cannot read IDX"):
        fashion_mnist.read_idx(bad)
