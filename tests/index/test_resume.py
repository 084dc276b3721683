"""Kill -9 mid-embedding or mid-publish (version written, CURRENT not yet switched), then re-run:
the index holds every item exactly once and equals an uninterrupted build."""

import json

import numpy as np
import pytest

from index.cli import main
from index.readers import read_sources
from index.runner import JobConfig, run_job
from index.search import open_index
from index.store import MetaStore
from tests.index.helpers import run_killed, write_corpus
from training.factory import load_model


def _ids_and_vectors(idx):
    rows = MetaStore(idx.path / "meta.sqlite").all_rows()
    return [r.item_id for r in rows], np.load(idx.path / "vectors.npy")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), 23)


@pytest.fixture(scope="module")
def clean(corpus, tiny_model_dir, tmp_path_factory):
    """(ids, vectors) of an uninterrupted build, the reference for every killed one."""
    root = tmp_path_factory.mktemp("clean")
    records, desc = read_sources(manifest=corpus)
    run_job("clean", load_model(tiny_model_dir), records, desc, JobConfig(4, 0), root=root, progress=False)
    return _ids_and_vectors(open_index("clean", root=root))


@pytest.mark.parametrize(("stage", "n"), [("shard", 2), ("current", 0)])
def test_sigkill_then_rerun_indexes_every_item_exactly_once(
    stage, n, corpus, clean, tiny_model_dir, tmp_path
):
    args = ["build", "--model", str(tiny_model_dir), "--manifest", str(corpus), "--batch-size", "4"]
    args += ["--workers", "0", "--no-progress"]
    proc = run_killed(tmp_path, stage, n, [*args, "--name", "k"])
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    work = list((tmp_path / "home" / "indexes" / "k" / ".work").glob("*/shard-*.npz"))
    assert len(work) == (2 if stage == "shard" else 6)  # 23 items in chunks of 4
    if stage != "current":
        with pytest.raises(Exception, match="no version None"):
            open_index("k")  # nothing was published

    main([*args, "--name", "k"])  # the re-run resumes from the shards
    ids, vectors = _ids_and_vectors(open_index("k"))
    ref_ids, ref_vectors = clean
    assert ids == ref_ids and len(set(ids)) == 23
    np.testing.assert_array_equal(vectors, ref_vectors)
    if stage == "shard":
        assert json.loads((open_index("k").path / "report.json").read_text())["resumed_items"] == 8
    assert not (tmp_path / "home" / "indexes" / "k" / ".work").exists() or not any(
        (tmp_path / "home" / "indexes" / "k" / ".work").iterdir()
    )
