"""`torchrun --nproc_per_node=2` (gloo, CPU): each rank embeds its chunks, rank 0 merges and builds;
the index equals a single-process build (same ids in the same order, same vectors)."""

import os
import subprocess
import sys

import numpy as np

from index.cli import main
from index.search import open_index
from index.store import MetaStore


def _ids_and_vectors(idx):
    rows = MetaStore(idx.path / "meta.sqlite").all_rows()
    return [(r.item_id, r.start) for r in rows], np.load(idx.path / "vectors.npy")


def test_two_ranks_build_the_same_index_as_one_process(mixed_corpus, tiny_model_dir):
    args = ["build", "--model", str(tiny_model_dir), "--manifest", str(mixed_corpus), "--batch-size", "3"]
    args += ["--workers", "0", "--no-progress"]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "index.cli",
    ]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([*launcher, *args, "--name", "ranks"], env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    main([*args, "--name", "single"])

    ids, vectors = _ids_and_vectors(open_index("ranks"))
    ref_ids, ref_vectors = _ids_and_vectors(open_index("single"))
    assert ids == ref_ids and len({i for i, _ in ids}) == 12
    np.testing.assert_allclose(vectors, ref_vectors, atol=1e-6)
    report = (open_index("ranks").path / "report.json").read_text()
    assert '"world_size": 2' in report and '"skipped": 3' in report
