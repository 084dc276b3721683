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
