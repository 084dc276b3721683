"""index.ondisk: an IVF-PQ index whose lists are merged on disk from 3 independently written shards
is the same index as one filled in RAM, finds what exact search finds, and the service's reader opens
it (lists memory-mapped) from wherever its version directory is moved to."""

import json
import shutil

import numpy as np
import pytest

from index.ondisk import LISTS, merge_shards, read_ondisk, train_empty, write_shard
from index.search import open_index
from index.store import Row, write_store
from training.errors import XModalError

FACTORY, NPROBE, DIM = "IVF32,PQ16", 8, 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    """6000 base vectors around 40 centres and 60 queries near base vectors, all L2-normalised."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, DIM))
    xb = _unit(centres[rng.integers(0, 40, 6000)] + 0.6 * rng.normal(size=(6000, DIM)))
    xq = _unit(xb[rng.choice(6000, 60, replace=False)] + 0.3 * rng.normal(size=(60, DIM)))
    return xb, xq


@pytest.fixture(scope="module")
def merged(tmp_path_factory, data):
    """trained.faiss, 3 shards of 2000 (global ids), merged into <root>/big/v0001 as a servable version."""
    xb, _ = data
    work = tmp_path_factory.mktemp("ondisk")
    trained = train_empty(xb, FACTORY, work / "trained.faiss")
    shards = [
        write_shard(trained, xb[i : i + 2000], i, work / f"shard-{i // 2000}.faiss") for i in (0, 2000, 4000)
    ]
    vdir = work / "indexes" / "big" / "v0001"
    merge_shards(trained, shards, vdir)
    rows = [Row(f"item{i}", "image", f"/media/{i}.png", [f"caption {i}"]) for i in range(len(xb))]
    write_store(vdir / "meta.sqlite", rows)
    np.save(vdir / "vectors.npy", xb)
    manifest = {
        "name": "big",
        "factory": FACTORY,
        "search_params": f"nprobe={NPROBE}",
        "count": len(xb),
        "vectors": len(xb),
        "dim": DIM,
        "model_fingerprint": "test",
    }
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    (vdir.parent / "CURRENT").write_text("v0001\n")
    return work, trained


def test_merged_on_disk_equals_the_index_filled_in_ram(merged, data):
    import faiss

    xb, xq = data
    work, trained = merged
    ram = faiss.read_index(str(trained))
    ram.add(xb)
    ram.nprobe = NPROBE
    disk = read_ondisk(work / "indexes/big/v0001/index.faiss")
    disk.nprobe = NPROBE
    assert disk.ntotal == ram.ntotal == len(xb)
    d_ram, i_ram = ram.search(xq, 10)
    d_disk, i_disk = disk.search(xq, 10)
    np.testing.assert_array_equal(i_disk, i_ram)
    np.testing.assert_allclose(d_disk, d_ram, rtol=1e-5)
    # the codes live in the lists file; index.faiss keeps the quantizers only
    assert (work / "indexes/big/v0001" / LISTS).stat().st_size > 2000 * 16
    assert (work / "indexes/big/v0001/index.faiss").stat().st_size < 40_000


def test_service_reader_opens_the_moved_version_and_recall_matches_flat(merged, data):
    xb, xq = data
    work, _ = merged
    moved = work / "elsewhere"  # e.g. shared storage mounted at another path on a serving node
    shutil.copytree(work / "indexes", moved)
    idx = open_index("big", root=moved)
    hits = idx.search(xq, 10)
    exact = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    recall = np.mean(
        [len({int(h.item_id[4:]) for h in hs} & set(e)) / 10 for hs, e in zip(hits, exact, strict=True)]
    )
    assert recall >= 0.8, recall
    flat_top1 = exact[:, 0]
    assert np.mean([int(hs[0].item_id[4:]) == t for hs, t in zip(hits, flat_top1, strict=True)]) >= 0.8
    idx.close()


def test_refined_or_flat_factories_and_missing_shards_are_clear_errors(tmp_path, data):
    xb, _ = data
    with pytest.raises(XModalError, match="IVF factory without a refine step"):
        train_empty(xb, "IVF32,PQ16,RFlat", tmp_path / "t.faiss")
    with pytest.raises(XModalError, match="IVF factory"):
        train_empty(xb, "Flat", tmp_path / "t.faiss")
    trained = train_empty(xb[:2000], "IVF16,PQ8", tmp_path / "t.faiss")
    with pytest.raises(XModalError, match="shard files not found: .*nope.faiss"):
        merge_shards(trained, [tmp_path / "nope.faiss"], tmp_path / "out")
