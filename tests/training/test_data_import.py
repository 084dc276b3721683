"""`xmodal data import`: sidecar captions, CSV/JSONL captions, unreadable files, bad caption lines."""

import json
from pathlib import Path

import pytest
from PIL import Image

from training.data.corpora import corpus_manifest
from training.data.importer import import_folder
from training.data.manifest import load_manifest, media_path
from training.errors import InputFileError, XModalError


def tiny_folder(root: Path) -> Path:
    (root / "pets").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(root / "pets/cat.jpg")
    (root / "pets/cat.txt").write_text("a red cat\n\n  a cat  \n")
    Image.new("RGB", (8, 6), "blue").save(root / "dog.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.md").write_text("not media")
    return root


def test_sidecar_captions_and_unreadable_image(tmp_path):
    root = tiny_folder(tmp_path / "My Pics")
    report, skipped = import_folder(root)
    assert report.name == "my-pics"
    assert len(skipped) == 1 and skipped[0].startswith(str(root / "broken.jpg"))
    manifest = corpus_manifest("my-pics")
    items = {it.id: it for it in load_manifest(manifest)}
    assert sorted(items) == ["my-pics/dog.png", "my-pics/pets/cat.jpg"]
    assert items["my-pics/pets/cat.jpg"].captions == ["a red cat", "a cat"]
    assert items["my-pics/dog.png"].captions == []
    assert Image.open(media_path(manifest, items["my-pics/dog.png"])).size == (8, 6)
    assert report.skipped == {"unreadable": 1}


def test_csv_and_jsonl_captions(tmp_path):
    root = tiny_folder(tmp_path / "pics")
    csv_file = tmp_path / "caps.csv"
    csv_file.write_text('path,caption\npets/cat.jpg,a cat\ndog.png,"a dog, blue"\ndog.png,a square\n')
    import_folder(root, name="c1", captions=csv_file)
    items = {it.id: it for it in load_manifest(corpus_manifest("c1"))}
    assert items["c1/dog.png"].captions == ["a dog, blue", "a square"]
    assert items["c1/pets/cat.jpg"].captions == ["a cat"]  # the file's captions replace the sidecar's

    jsonl = tmp_path / "caps.jsonl"
    jsonl.write_text(json.dumps({"path": "dog.png", "captions": ["x", "y"]}) + "\n\n")
    import_folder(root, name="c2", captions=jsonl)
    items = {it.id: it for it in load_manifest(corpus_manifest("c2"))}
    assert items["c2/dog.png"].captions == ["x", "y"]
    assert items["c2/pets/cat.jpg"].captions == ["a red cat", "a cat"]  # not listed: the sidecar's


def test_videos_are_probed(tmp_path):
    import av
    import numpy as np

    root = tmp_path / "clips"
    root.mkdir()
    with av.open(str(root / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 50, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    (root / "clip.txt").write_text("a fading square")
    (root / "bad.avi").write_bytes(b"RIFF....AVI garbage")
    report, skipped = import_folder(root)
    (item,) = load_manifest(corpus_manifest("clips"))
    assert item.media == "video" and item.captions == ["a fading square"]
    assert len(skipped) == 1 and str(root / "bad.avi") in skipped[0]


@pytest.mark.parametrize(
    ("name", "text", "where", "message"),
    [
        ("c.csv", "file,text\ndog.png,a dog\n", ":1:", "header row with the columns path,caption"),
        ("c.csv", "path,caption\ndog.png,a dog\ndog.png\n", ":3:", "expected 2 columns"),
        ("c.csv", "path,caption\ndog.png,a dog\ncow.png,a cow\n", ":3:", "no such file 'cow.png'"),
        ("c.csv", "path,caption\ndog.png, \n", ":2:", "caption is empty"),
        (
            "c.jsonl",
            '{"path": "dog.png", "caption": "a"}\n{"path": "dog.png", "caption": \n',
            ":2:",
            "invalid JSON",
        ),
        ("c.jsonl", '{"path": "dog.png", "captions": "a dog"}\n', ":1:", "captions"),
        ("c.jsonl", '["dog.png", "a dog"]\n', ":1:", "expected an object"),
        ("c.txt", "dog.png,a dog\n", "", "must be .csv or .jsonl"),
    ],
)
def test_bad_caption_files_name_file_and_line(tmp_path, name, text, where, message):
    root = tiny_folder(tmp_path / "pics")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputFileError, match=f"{name}{where}.*{message}"):
        import_folder(root, name="bad", captions=path)


def test_bad_folder_and_names(tmp_path):
    with pytest.raises(XModalError, match="is not a folder"):
        import_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(XModalError, match="no images or videos"):
        import_folder(tmp_path / "empty")
    root = tiny_folder(tmp_path / "pics")
    with pytest.raises(XModalError, match="built-in corpus"):
        import_folder(root, name="photos")
    with pytest.raises(XModalError, match="corpus name"):
        import_folder(root, name="../evil")
