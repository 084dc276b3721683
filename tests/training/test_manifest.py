import json

import pytest

from training.data.manifest import Item, load_manifest, split_for, write_manifest
from training.errors import InputFileError


def test_round_trip(tmp_path):
    items = [
        Item(id=f"x{i}", path=f"m/{i}.png", captions=[f"cap {i}"], split=split_for(f"x{i}")) for i in range(5)
    ]
    p = tmp_path / "manifest.jsonl"
    assert write_manifest(p, items) == 5
    assert load_manifest(p) == items


def test_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "manifest.jsonl"
    good = json.dumps({"id": "a", "path": "a.png"})
    p.write_text(good + "\n\n" + json.dumps({"id": "b", "path": "b.png", "media": "audio"}) + "\n")
    with pytest.raises(InputFileError, match=r"manifest.jsonl:3: media"):
        load_manifest(p)


def test_malformed_json_and_duplicate_id(tmp_path):
    p = tmp_path / "manifest.jsonl"
    p.write_text('{"id": "a", "path": "a.png"\n')
    with pytest.raises(InputFileError, match=r":1:"):
        load_manifest(p)
    p.write_text('{"id": "a", "path": "a.png"}\n{"id": "a", "path": "b.png"}\n')
    with pytest.raises(InputFileError, match=r":2: duplicate id 'a'"):
        load_manifest(p)


def test_split_is_deterministic_and_roughly_proportional():
    splits = [split_for(f"item-{i}") for i in range(4000)]
    assert splits == [split_for(f"item-{i}") for i in range(4000)]
    assert 0.07 < splits.count("test") / 4000 < 0.13
    assert 0.03 < splits.count("val") / 4000 < 0.07
