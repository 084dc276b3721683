"""add / remove / use: new versions without re-embedding existing items; model mismatch refused."""

import numpy as np
import pytest
import torch

import index.runner
from index.cli import main
from index.search import open_index
from index.store import MetaStore
from tests.index.helpers import write_corpus
from training.errors import XModalError
from training.factory import create_model, save_model

ARGS = ["--batch-size", "4", "--workers", "0", "--no-progress"]


def _state(idx):
    rows = MetaStore(idx.path / "meta.sqlite").all_rows()
    return {r.item_id: v for r, v in zip(rows, np.load(idx.path / "vectors.npy"), strict=True)}


def test_add_embeds_only_new_items_and_keeps_old_vectors(tmp_path, tiny_model_dir, monkeypatch):
    first = write_corpus(tmp_path / "a", 8)
    both = write_corpus(tmp_path / "b", 12)  # img0..img11: 8 already indexed + 4 new
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(first), "--name", "x", *ARGS])
    v1 = _state(open_index("x"))

    embedded = []
    original = index.runner.embed_chunk
    monkeypatch.setattr(
        index.runner, "embed_chunk", lambda m, d, recs: embedded.extend(recs) or original(m, d, recs)
    )
    main(["add", "--model", str(tiny_model_dir), "--manifest", str(both), "--name", "x", *ARGS])
    assert sorted(r.item_id for r in embedded) == ["img10", "img11", "img8", "img9"]

    idx = open_index("x")
    assert idx.version == "v0002" and len(idx) == 12 and idx.manifest["parent"] == "v0001"
    v2 = _state(idx)
    for item, vec in v1.items():
        np.testing.assert_array_equal(v2[item], vec)
    hits = idx.search(v2["img10"][None], k=1)[0]
    assert hits[0].item_id == "img10"

    with pytest.raises(XModalError, match="nothing to add: all 12 items"):
        main(["add", "--model", str(tiny_model_dir), "--manifest", str(both), "--name", "x", *ARGS])


def test_remove_by_ids_and_by_metadata_then_roll_back(tmp_path, tiny_model_dir):
    corpus = write_corpus(tmp_path / "c", 9)  # split "test" for img0, img3, img6
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(corpus), "--name", "x", *ARGS])
    v1 = _state(open_index("x"))

    main(["remove", "--name", "x", "--ids", "img1,img2"])
    idx = open_index("x")
    v2 = _state(idx)
    assert sorted(v2) == sorted(set(v1) - {"img1", "img2"})
    for item, vec in v2.items():
        np.testing.assert_array_equal(vec, v1[item])
    assert all(h.item_id not in ("img1", "img2") for h in idx.search(v1["img1"][None], k=10)[0])

    main(["remove", "--name", "x", "--where", "split=test"])
    assert sorted(_state(open_index("x"))) == ["img4", "img5", "img7", "img8"]

    with pytest.raises(XModalError, match="no item\\(s\\) 'img1'"):
        main(["remove", "--name", "x", "--ids", "img1"])
    with pytest.raises(XModalError, match="no items in index 'x' match"):
        main(["remove", "--name", "x", "--where", "n=1000"])
    with pytest.raises(XModalError, match="give --ids or --where"):
        main(["remove", "--name", "x"])

    main(["use", "--name", "x", "--version", "v0001"])
    assert open_index("x").version == "v0001" and len(open_index("x")) == 9


def test_add_with_another_model_is_refused_naming_both_fingerprints(tmp_path, tiny_model_dir):
    corpus = write_corpus(tmp_path / "c", 4)
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(corpus), "--name", "x", *ARGS])
    other = tmp_path / "other-model"
    torch.manual_seed(123)  # different weights, so a different fingerprint
    fp_other = save_model(create_model("tiny-clip"), other)
    fp_index = open_index("x").manifest["model_fingerprint"]
    assert fp_other != fp_index
    more = write_corpus(tmp_path / "d", 2, start=10)
    with pytest.raises(XModalError, match=f"{fp_index}.*{fp_other}"):
        main(["add", "--model", str(other), "--manifest", str(more), "--name", "x", *ARGS])
