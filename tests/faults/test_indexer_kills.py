"""SIGKILL the indexer at random points, tear its shards, then resume: every item exactly once and
vectors equal to an uninterrupted run. Small here; `make faults` runs >= 10 kills over >= 1,000 items."""

import json
import time

import numpy as np
import pytest

from index.cli import main
from index.publish import verify_version
from index.search import open_index
from index.store import MetaStore
from tests.faults.conftest import FULL
from tests.index.helpers import run_killed, write_corpus
from training.errors import XModalError
from training.home import indexes_dir

# every kill costs a process start (~10 s on a busy 2-core host): one here, twelve in `make faults`
ITEMS, KILLS, BATCH, WORKERS = (1000, 12, 16, 1) if FULL else (40, 1, 4, 0)
EMBED_STAGES = ("timer", "shard", "journal")
PUBLISH_STAGES = ("fsync", "rename", "current")


def _ids_and_vectors(name):
    idx = open_index(name)
    return [r.item_id for r in MetaStore(idx.path / "meta.sqlite").all_rows()], np.load(
        idx.path / "vectors.npy"
    )


def _args(model, corpus, name):
    return ["build", "--model", str(model), "--manifest", str(corpus), "--name", name, "--no-progress"] + [
        "--batch-size", str(BATCH), "--workers", str(WORKERS)
    ]  # fmt: skip


def _versions_intact(name) -> list[str]:
    """Every version dir on disk verifies (a kill never leaves a half-written vNNNN)."""
    d = indexes_dir() / name
    found = sorted(p.name for p in d.glob("v[0-9]*"))
    for v in found:
        verify_version(d / v)
    return found


def test_random_sigkills_then_resume_index_every_item_exactly_once(
    tmp_path, tiny_model_dir, record_figures, capsys
):
    corpus = write_corpus(tmp_path / "corpus", ITEMS)
    t0 = time.perf_counter()
    main(_args(tiny_model_dir, corpus, "ref"))  # the uninterrupted reference, in-process
    ref_s = time.perf_counter() - t0  # what a killer's timer counts: model load to publication
    ref_ids, ref_vectors = _ids_and_vectors("ref")

    rng = np.random.default_rng(14)
    n_chunks = -(-ITEMS // BATCH)
    kills, stages, reembedded = 0, [], 0
    for i in range(KILLS):
        publishing = FULL and i >= KILLS - len(PUBLISH_STAGES)  # the last kills land in publication
        stage = rng.choice(PUBLISH_STAGES if publishing else EMBED_STAGES)
        # timer: ms after the job starts; shard/journal: the n-th chunk this run writes; the publication
        # stages run once per job, so their first call
        if stage == "timer":
            n = int(rng.uniform(0, ref_s * 1000))
        else:
            n = int(rng.integers(0, n_chunks // KILLS + 1)) if stage in EMBED_STAGES else 0
        proc = run_killed(tmp_path, stage, n, _args(tiny_model_dir, corpus, "k"))
        err = proc.stderr.decode()
        assert proc.returncode == -9, err[-2000:]  # every run dies (at set_current at the latest)
        kills += 1
        stages.append(f"{stage}:{n}")
        reembedded += err.count("re-embedding chunk")
        with pytest.raises(XModalError, match="no version None|index 'k' not found"):
            open_index("k")  # nothing was published by a killed run (killed early: nothing written)
        _versions_intact("k")

    main(_args(tiny_model_dir, corpus, "k"))  # the resume, to the end
    reembedded += capsys.readouterr().err.count("re-embedding chunk")
    ids, vectors = _ids_and_vectors("k")
    lost, duplicated = len(set(ref_ids) - set(ids)), len(ids) - len(set(ids))
    report = json.loads((open_index("k").path / "report.json").read_text())
    record_figures(kills=kills, items=ITEMS, lost=lost, duplicated=duplicated, stages=stages,
                   reembedded_chunks=reembedded, resumed_items=report["resumed_items"])  # fmt: skip
    assert ids == ref_ids and lost == 0 and duplicated == 0
    np.testing.assert_array_equal(vectors, ref_vectors)
    assert _versions_intact("k")[-1] == open_index("k").version


def test_torn_and_unjournalled_shards_are_re_embedded(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus", 24)
    args = ["build", "--model", str(tiny_model_dir), "--manifest", str(corpus), "--no-progress"]
    args += ["--batch-size", "4", "--workers", "0"]
    main([*args, "--name", "ref"])
    ref_ids, ref_vectors = _ids_and_vectors("ref")
    proc = run_killed(tmp_path, "journal", 3, [*args, "--name", "k"])  # 4th shard in place, not journalled
    assert proc.returncode == -9
    work = next((indexes_dir() / "k" / ".work").iterdir())
    shards = sorted(work.glob("shard-*.npz"))
    assert len(shards) == 4
    shards[0].write_bytes(shards[0].read_bytes()[:100])  # torn by a power cut
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[:-50] + bytes(50))  # same length, zeroed tail
    main([*args, "--name", "k"])
    err = capsys.readouterr().err
    assert (
        "shard-000000.npz: fails its check (100 bytes" in err and "shard-000001.npz: fails its check" in err
    )
    assert "shard-000003.npz: not in the journal" in err
    ids, vectors = _ids_and_vectors("k")
    assert ids == ref_ids
    np.testing.assert_array_equal(vectors, ref_vectors)
    assert json.loads((open_index("k").path / "report.json").read_text())["resumed_items"] == 4  # chunk 2
