"""The build job end to end on tiny corpora: stored vectors vs the model, search vs brute force,
videos and segments, broken files skipped and reported, every source kind."""

import json
import tarfile

import numpy as np
import torch
from PIL import Image

from index.cli import main
from index.search import open_index
from index.store import MetaStore
from tests.index.helpers import brute_force, make_image, make_video
from training.factory import load_model
from training.video import VideoConfig, sample_video

ARGS = ["--batch-size", "4", "--workers", "0", "--no-progress"]


def _stored(idx):
    store = MetaStore(idx.path / "meta.sqlite")
    return np.load(idx.path / "vectors.npy"), store.all_rows()


def test_build_embeds_images_and_videos_like_the_model(mixed_corpus, tiny_model_dir):
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(mixed_corpus), "--name", "m", *ARGS])
    idx = open_index("m")
    vectors, rows = _stored(idx)
    model = load_model(tiny_model_dir)
    assert idx.manifest["model_fingerprint"] == model.fingerprint and len(idx) == 12

    # images: the stored vector is the model's normalised embedding of the file
    ids = [f"img{i}" for i in range(10)]
    expected = model.embed_images([Image.open(mixed_corpus.parent / f"media/{i}.png") for i in ids]).numpy()
    by_id = {r.item_id: vectors[r.key] for r in rows if r.start is None}
    np.testing.assert_allclose(np.stack([by_id[i] for i in ids]), expected, atol=1e-5)

    # videos: one whole-video row + one row per 5 s segment (vid1 lasts 6 s -> 2 segments)
    cfg = VideoConfig()
    sample = sample_video(mixed_corpus.parent / "media/vid1.mp4", cfg)
    segs = [r for r in rows if r.item_id == "vid1" and r.start is not None]
    assert [(r.start, r.end) for r in segs] == [(0.0, 5.0), (5.0, 6.0)]
    with torch.inference_mode():
        frames = torch.stack([model.preprocess(f) for f in sample.frames])[None]
        whole = model.encode_video(frames, normalize=True)[0].numpy()
    np.testing.assert_allclose(by_id["vid1"], whole, atol=1e-5)


def test_search_over_a_built_index_matches_brute_force(mixed_corpus, tiny_model_dir):
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(mixed_corpus), "--name", "m", *ARGS])
    idx = open_index("m")
    vectors, rows = _stored(idx)
    queries = load_model(tiny_model_dir).embed_texts(["a red picture", "a blue clip", "grey"]).numpy()
    for q, hits in zip(queries, idx.search(queries, k=6), strict=True):
        ref = brute_force(vectors, rows, q, 6)
        assert [(h.item_id, h.start) for h in hits] == [(i, s) for i, _, s in ref]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s, _ in ref], rtol=1e-5)
    for q, hits in zip(queries, idx.search(queries, k=3, where={"split": "test"}), strict=True):
        assert [h.item_id for h in hits] == [
            i for i, _, _ in brute_force(vectors, rows, q, 3, lambda r: r.meta["split"] == "test")
        ]


def test_corrupt_and_missing_files_are_skipped_and_reported(mixed_corpus, tiny_model_dir, capsys):
    main(["build", "--model", str(tiny_model_dir), "--manifest", str(mixed_corpus), "--name", "m", *ARGS])
    idx = open_index("m")
    report = json.loads((idx.path / "report.json").read_text())
    assert report["skipped"] == 3
    reasons = {f["item_id"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"bad-image", "bad-video", "missing"}
    assert "truncated" in reasons["bad-image"] and "No such file" in reasons["missing"]
    assert all(idx.get(i) is None for i in reasons)
    err = capsys.readouterr().err
    assert "skipped bad-video" in err


def test_decoding_in_worker_processes_gives_the_same_index(image_corpus, tiny_model_dir):
    base = [
        "build",
        "--model",
        str(tiny_model_dir),
        "--manifest",
        str(image_corpus),
        "--batch-size",
        "5",
        "--no-progress",
    ]
    main([*base, "--name", "inline", "--workers", "0"])
    main([*base, "--name", "workers", "--workers", "2"])
    a, b = open_index("inline"), open_index("workers")
    np.testing.assert_array_equal(np.load(a.path / "vectors.npy"), np.load(b.path / "vectors.npy"))
    assert [r.item_id for r in _stored(a)[1]] == [r.item_id for r in _stored(b)[1]]


def test_build_from_a_folder_and_from_tar_shards(tmp_path, tiny_model_dir):
    folder = tmp_path / "folder" / "sub"
    folder.mkdir(parents=True)
    for i in range(3):
        make_image(folder / f"p{i}.jpg", i)
    (folder / "p1.txt").write_text("a green thing\n")
    make_video(folder / "clip.mp4", seconds=3, codec="libx264")
    main(["build", "--model", str(tiny_model_dir), "--dir", str(tmp_path / "folder"), "--name", "d", *ARGS])
    idx = open_index("d")
    assert sorted(r.item_id for r in _stored(idx)[1] if r.start is None) == [
        "sub/clip.mp4",
        "sub/p0.jpg",
        "sub/p1.jpg",
        "sub/p2.jpg",
    ]
    assert idx.get("sub/p1.jpg").caption == "a green thing" and idx.get("sub/clip.mp4").media == "video"

    for s in range(2):  # webdataset layout: key.png + key.txt / key.json
        with tarfile.open(tmp_path / f"shard-{s:03d}.tar", "w") as tar:
            for i in range(3):
                key = f"s{s}_{i}"
                make_image(tmp_path / f"{key}.png", 10 * s + i)
                tar.add(tmp_path / f"{key}.png", f"{key}.png")
                (tmp_path / f"{key}.json").write_text(json.dumps({"caption": f"cap {key}", "source": "tar"}))
                tar.add(tmp_path / f"{key}.json", f"{key}.json")
    pattern = str(tmp_path / "shard-{000..001}.tar")
    main(["build", "--model", str(tiny_model_dir), "--shards", pattern, "--name", "t", *ARGS])
    idx = open_index("t")
    assert len(idx) == 6
    hit = idx.get("shard-001/s1_2")
    assert hit.caption == "cap s1_2" and hit.meta["source"] == "tar" and Image.open(hit.path).size == (48, 48)


def test_corpus_ids_are_prefixed_once():
    """Prepared ids already start with "<corpus>/" and keep it; an id without it gets it when several
    corpora share an index (unique ids), and stays bare for one corpus."""
    from index.readers import read_corpus_records
    from training.data.corpora import corpus_dir

    for name, ids in {"alpha": ["alpha/a1", "alpha/a2"], "beta": ["b1"]}.items():
        root = corpus_dir(name)
        root.mkdir(parents=True)
        lines = [{"id": i, "path": f"media/{i.split('/')[-1]}.png", "captions": ["x"]} for i in ids]
        (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [r.item_id for r in read_corpus_records("alpha,beta")] == ["alpha/a1", "alpha/a2", "beta/b1"]
    assert [r.item_id for r in read_corpus_records("beta")] == ["b1"]
