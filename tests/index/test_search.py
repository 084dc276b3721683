"""index.search against brute-force numpy: ranking, video dedupe, filters, versions, compatibility."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from index.publish import write_version
from index.search import check_compatible, list_indexes, open_index
from index.store import Row
from tests.index.helpers import brute_force
from training.errors import XModalError

DIM = 16


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n_images=40, n_videos=6, segments=3, seed=0):
    """Images i0.. and videos v0.. (a whole-video row + `segments` segment rows each)."""
    rng = np.random.default_rng(seed)
    rows, vecs = [], []
    for i in range(n_images):
        rows.append(
            Row(f"i{i}", "image", f"/m/i{i}.png", [f"image {i}"], meta={"split": ["train", "test"][i % 2]})
        )
        vecs.append(rng.normal(size=DIM))
    for v in range(n_videos):
        rows.append(Row(f"v{v}", "video", f"/m/v{v}.mp4", [f"video {v}"], meta={"split": "test", "n": v}))
        vecs.append(rng.normal(size=DIM))
        for s in range(segments):
            rows.append(
                Row(
                    f"v{v}",
                    "video",
                    f"/m/v{v}.mp4",
                    [f"video {v}"],
                    2.0 * s,
                    2.0 * s + 2,
                    {"split": "test", "n": v},
                )
            )
            vecs.append(rng.normal(size=DIM))
    return rows, _unit(np.stack(vecs))


def _publish(name="t", factory="Flat", **kw):
    rows, vecs = _corpus(**kw)
    manifest = {"model_fingerprint": "fp1", "corpus": ["synthetic"], "max_rows_per_item": 4}
    write_version(name, vecs, rows, manifest, factory=factory)
    return rows, vecs


@pytest.mark.parametrize("factory", ["Flat", "IVF1,Flat"])  # numpy exact path; the FAISS path
def test_search_matches_brute_force_with_one_hit_per_video(factory):
    rows, vecs = _publish(factory=factory)
    idx = open_index("t")
    queries = _unit(np.random.default_rng(1).normal(size=(8, DIM)))
    for q, hits in zip(queries, idx.search(queries, k=10), strict=True):
        ref = brute_force(vecs, rows, q, 10)
        assert [h.item_id for h in hits] == [r[0] for r in ref]
        np.testing.assert_allclose([h.score for h in hits], [r[1] for r in ref], rtol=1e-5)
        assert [h.start for h in hits] == [r[2] for r in ref]
        assert len({h.item_id for h in hits}) == len(hits)
        assert all(h.media == "video" and h.end == h.start + 2 for h in hits if h.start is not None)


def test_filters_apply_before_k():
    rows, vecs = _publish()
    idx = open_index("t")
    q = _unit(np.random.default_rng(2).normal(size=(3, DIM)))
    cases = [
        ({"media": "video"}, lambda r: r.media == "video"),
        ({"where": {"split": "train"}}, lambda r: r.meta["split"] == "train"),
        ({"media": "video", "where": {"n": 3}}, lambda r: r.media == "video" and r.meta.get("n") == 3),
    ]
    for kwargs, keep in cases:
        for qi, hits in zip(q, idx.search(q, k=5, **kwargs), strict=True):
            assert [h.item_id for h in hits] == [r[0] for r in brute_force(vecs, rows, qi, 5, keep)]
    assert idx.search(q, k=5, where={"split": "nope"}) == [[], [], []]


def test_filter_by_overfetching_the_ann_index(monkeypatch):
    import index.search as search

    monkeypatch.setattr(search, "EXACT_FILTER_MAX", 0)  # force the FAISS over-fetch path
    rows, vecs = _publish()
    idx = open_index("t")
    q = _unit(np.random.default_rng(3).normal(size=(4, DIM)))
    for qi, hits in zip(q, idx.search(q, k=4, media="video"), strict=True):
        assert [h.item_id for h in hits] == [
            r[0] for r in brute_force(vecs, rows, qi, 4, lambda r: r.media == "video")
        ]


def test_get_captions_versions_and_listing():
    _publish()
    _publish(seed=5, n_images=10, n_videos=0)
    idx = open_index("t")
    assert idx.version == "v0002" and len(idx) == 10 and idx.manifest["factory"] == "Flat"
    assert open_index("t", "v0001").manifest["count"] == 46
    hit = open_index("t", "v0001").get("v2")
    assert (hit.media, hit.start, hit.caption, hit.meta["n"]) == ("video", None, "video 2", 2)
    assert idx.get("missing") is None
    assert idx.captions() == sorted(f"image {i}" for i in range(10))
    [entry] = list_indexes()
    assert entry["name"] == "t" and entry["current"] == "v0002" and entry["versions"] == ["v0001", "v0002"]
    with pytest.raises(XModalError, match="not found.*known: t"):
        open_index("nope")
    with pytest.raises(XModalError, match="no version 'v9'.*v0001, v0002"):
        open_index("t", "v9")


def test_concurrent_searches_from_threads_agree():
    _publish()
    idx = open_index("t")
    q = _unit(np.random.default_rng(4).normal(size=(16, DIM)))
    expected = [[h.item_id for h in hs] for hs in idx.search(q, k=5)]
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(lambda i: [h.item_id for h in idx.search(q[i : i + 1], k=5, where=None)[0]], range(16))
        )
    assert got == expected
    idx.close()


def test_model_mismatch_is_refused_naming_both_fingerprints():
    _publish()
    idx = open_index("t")
    check_compatible(idx, "fp1")
    with pytest.raises(XModalError, match="fp1.*fp2"):
        check_compatible(idx, "fp2")


def test_bad_query_dimension_is_a_clear_error():
    _publish()
    with pytest.raises(XModalError, match="dimension 3 .* 16"):
        open_index("t").search(np.zeros((1, 3), np.float32), k=3)


def test_a_killed_writers_temp_dirs_are_removed_by_the_next_write():
    """Every writer holds the writer lock, so a temp dir found by the next one is a killed writer's."""
    from training.home import indexes_dir

    _publish()
    left = [indexes_dir() / "t" / ".tmp-old", indexes_dir() / "t" / ".tmp-newer"]
    for d in left:
        d.mkdir()
        (d / "index.faiss").write_bytes(b"partial")
    _publish(seed=1)
    assert not any(d.exists() for d in left)
    assert open_index("t").version == "v0002"


def test_twins_are_left_out_and_k_is_still_filled():
    """An item filed twice (same picture and caption under two ids) is one hit unless unique=False; the
    search fetches further candidates so that k hits still come back."""
    rows, vecs = _corpus(n_images=30, n_videos=0)
    rows.append(Row("i3-again", "image", "/m/other/i3.png", ["image 3"]))
    vecs = np.concatenate([vecs, vecs[3:4]])
    write_version("tw", vecs, rows, {"model_fingerprint": "fp1"}, factory="Flat")
    idx = open_index("tw")
    unique = [h.item_id for h in idx.search(vecs[3], 10)[0]]
    both = [h.item_id for h in idx.search(vecs[3], 10, unique=False)[0]]
    assert len(unique) == len(both) == 10
    assert set(both[:2]) == {"i3", "i3-again"} and unique[0] in {"i3", "i3-again"}
    assert not {"i3", "i3-again"} <= set(unique)
    others = [i for i in both if i not in {"i3", "i3-again"}]  # 8 of them
    assert unique[1:9] == others and unique[9] not in both  # one more candidate fills k
