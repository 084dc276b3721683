"""`xmodal data prepare / list / import` in-process, and the corpus API the trainer and indexer call."""

import pytest
from PIL import Image

from training.data.cli import main
from training.data.corpora import corpus_manifest, known_corpora, openclipart
from training.data.manifest import load_manifest
from training.errors import XModalError


def test_corpus_manifest_before_and_after_prepare(capsys):
    with pytest.raises(
        XModalError, match=r"corpus 'photos' is not prepared; run `xmodal data prepare photos`"
    ):
        corpus_manifest("photos")
    main(["prepare", "photos", "--limit", "3", "--workers", "1"])
    out = capsys.readouterr().out
    assert "photos: 3 items" in out
    items = load_manifest(corpus_manifest("photos"))
    assert [it.id for it in items] == ["photos/astronaut", "photos/camera", "photos/cat"]

    main(["list"])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == known_corpora()
    counts = {s: sum(it.split == s for it in items) for s in ("train", "val", "test")}
    assert rows["photos"].split()[1:6] == [
        "limit",
        "3",
        str(counts["train"]),
        str(counts["val"]),
        str(counts["test"]),
    ]
    assert "not prepared" in rows["videos"]


def test_unknown_and_unavailable_corpora(monkeypatch):
    with pytest.raises(XModalError, match="unknown corpus 'nope'; known: easy-vqa, fashion-mnist"):
        main(["prepare", "nope"])
    monkeypatch.setattr(openclipart, "available", lambda: "no SVGs under /x (install openclipart-svg)")
    with pytest.raises(XModalError, match="cannot prepare openclipart: no SVGs"):
        main(["prepare", "openclipart"])
    with pytest.raises(
        XModalError, match="corpus 'mine' is not prepared; run `xmodal data import DIR --name mine`"
    ):
        corpus_manifest("mine")


def test_import_then_list(tmp_path, capsys):
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "pics/a.png")
    (tmp_path / "pics/b.jpg").write_bytes(b"garbage")
    main(["import", str(tmp_path / "pics"), "--name", "mine"])
    captured = capsys.readouterr()
    assert f"skipped unreadable: {tmp_path / 'pics/b.jpg'}" in captured.err
    assert "mine: 1 items" in captured.out
    main(["list"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mine")]
    assert row.split()[1] == "imported" and row.endswith("1 unreadable")


def test_prepare_all_skips_missing_sources_and_list_shows_partial(monkeypatch, capsys):
    from training.data.corpora import corpus_dir, corpus_module
    from training.data.corpora.builder import BuildReport

    built = []

    def fake_prepare(name):
        def prepare(out_dir, limit=None, workers=1):
            built.append((name, limit, workers))
            return BuildReport(name=name, counts={"train": 2, "test": 1}, skipped={}, qa=0, seconds=0.0)

        return prepare

    for name in known_corpora():  # sources present or not on this machine, only fashion-mnist is missing
        monkeypatch.setattr(corpus_module(name), "prepare", fake_prepare(name))
        monkeypatch.setattr(corpus_module(name), "available", lambda: None)
    monkeypatch.setattr(
        corpus_module("fashion-mnist"), "available", lambda: "missing t10k-images (install it)"
    )
    main(["prepare", "all", "--limit", "5", "--workers", "3"])
    out = capsys.readouterr().out
    assert sorted(b[0] for b in built) == sorted(set(known_corpora()) - {"fashion-mnist"})
    assert {b[1:] for b in built} == {(5, 3)}
    assert "NOT PREPARED fashion-mnist: missing t10k-images" in out
    assert out.count(": 3 items (train 2, val 0, test 1)") == 4

    corpus_dir("videos").mkdir(parents=True)  # a first build killed before its manifest
    main(["list"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("videos")]
    assert row.split()[1] == "partial"
