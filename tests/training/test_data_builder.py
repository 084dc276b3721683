"""The resumable builder: a killed build resumes without losing or duplicating items."""

import json
from pathlib import Path

import pytest
from PIL import Image

from training.data.corpora.builder import JOURNAL, Skip, build, read_info, save_image
from training.data.manifest import Item, load_manifest, split_for

CALLS: list[str] = []


def make(key: str, out_dir: Path) -> Item | Skip:
    CALLS.append(key)
    if key.endswith("7"):
        return Skip("odd", key)
    if key == "k05" and (out_dir / "crash").exists():
        raise RuntimeError("killed")
    rel = f"media/{key}.png"
    save_image(Image.new("L", (4, 4), int(key[1:]) * 10), out_dir / rel)
    return Item(id=key, path=rel, captions=[f"item {key}"], split=split_for(key))


KEYS = [f"k{i:02d}" for i in range(12)]


def test_build_writes_manifest_counts_and_skips(tmp_path):
    report = build("t", tmp_path, KEYS, make)
    items = load_manifest(tmp_path / "manifest.jsonl")
    assert [it.id for it in items] == [k for k in KEYS if not k.endswith("7")]
    assert report.skipped == {"odd": 1} and report.total == 11
    assert read_info(tmp_path) == report
    assert Image.open(tmp_path / "media/k03.png").getpixel((0, 0)) == 30


def test_killed_build_resumes_without_redoing_or_duplicating(tmp_path):
    (tmp_path / "crash").touch()
    CALLS.clear()
    with pytest.raises(RuntimeError):
        build("t", tmp_path, KEYS, make)
    assert not (tmp_path / "manifest.jsonl").exists()
    assert KEYS[:6] == CALLS
    # a torn last line, as a kill in the middle of a write leaves it
    with (tmp_path / JOURNAL).open("a") as f:
        f.write('{"key": "k06", "item": {"id"')
    (tmp_path / "crash").unlink()
    CALLS.clear()
    build("t", tmp_path, KEYS, make)
    assert KEYS[5:] == CALLS  # only the unfinished keys ran
    items = load_manifest(tmp_path / "manifest.jsonl")  # the reader rejects duplicate ids
    assert len(items) == 11
    lines = [json.loads(line) for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert sorted(e["key"] for e in lines) == KEYS


def test_rerun_skips_finished_and_redoes_lost_media(tmp_path):
    build("t", tmp_path, KEYS, make)
    (tmp_path / "media/k02.png").unlink()
    CALLS.clear()
    build("t", tmp_path, KEYS, make)
    assert CALLS == ["k02"]
    assert (tmp_path / "media/k02.png").is_file()


def test_limit_then_full_build_and_workers(tmp_path):
    report = build("t", tmp_path, KEYS, make, limit=4, workers=2)
    assert report.limit == 4 and report.total == 4
    report = build("t", tmp_path, KEYS, make, workers=2)
    assert report.limit is None and report.total == 11
    assert len(load_manifest(tmp_path / "manifest.jsonl")) == 11


def test_finished_build_is_not_rewritten(tmp_path):
    first = build("t", tmp_path, KEYS, make)
    stamp = (tmp_path / "manifest.jsonl").stat().st_mtime_ns
    CALLS.clear()
    again = build("t", tmp_path, KEYS, make)
    assert CALLS == [] and (tmp_path / "manifest.jsonl").stat().st_mtime_ns == stamp
    assert (again.counts, again.skipped) == (first.counts, first.skipped)
    # fewer source keys than last time: the manifest is rebuilt for them
    assert build("t", tmp_path, KEYS[:3], make).total == 3
