"""Past one machine, on one machine: two torchrun agents, each a "node" (--nnodes=2, --node_rank,
c10d rendezvous on one endpoint), as README's scale-out section runs them on two hosts. Indexing
shards the corpus across the nodes into shared storage (here one XMODAL_HOME) and training averages
gradients across them; both give what one process gives."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.cli import main as index_main
from index.search import open_index
from index.store import MetaStore
from tests.index.helpers import write_corpus
from training.factory import read_card
from training.train import main as train_main

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(module: str, args: list[str], timeout: int = 300) -> None:
    """Runs `python -m module args` as 2 nodes x 1 process; fails with both agents' stderr."""
    endpoint = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint={endpoint}",
                "--rdzv_id=xmodal-test",
                "-m",
                module,
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outs = []
    try:
        outs = [a.communicate(timeout=timeout) for a in agents]
    finally:
        for a in agents:
            a.kill()
    for rank, (a, (_, err)) in enumerate(zip(agents, outs, strict=True)):
        assert a.returncode == 0, f"node {rank}: {err[-3000:]}"


def _ids_and_vectors(idx):
    rows = MetaStore(idx.path / "meta.sqlite").all_rows()
    return [(r.item_id, r.start) for r in rows], np.load(idx.path / "vectors.npy")


@pytest.mark.slow
def test_two_nodes_index_into_shared_storage_like_one_process(tmp_path, tiny_model_dir):
    corpus = write_corpus(tmp_path / "mixed", 10, n_videos=2, broken=True)
    args = ["build", "--model", str(tiny_model_dir), "--manifest", str(corpus), "--batch-size", "3"]
    args += ["--workers", "0", "--no-progress"]
    _two_nodes("index.cli", [*args, "--name", "nodes"])
    index_main([*args, "--name", "single"])
    ids, vectors = _ids_and_vectors(open_index("nodes"))
    ref_ids, ref_vectors = _ids_and_vectors(open_index("single"))
    assert ids == ref_ids and len({i for i, _ in ids}) == 12
    np.testing.assert_allclose(vectors, ref_vectors, atol=1e-6)
    assert '"world_size": 2' in (open_index("nodes").path / "report.json").read_text()


@pytest.mark.slow
def test_two_nodes_train_like_one_process(tmp_path):
    from tests.training.synthetic import make_corpus

    make_corpus()
    args = ["--model", "tiny-clip", "--data", "shapes", "--steps", "2", "--batch-size", "8", "--lr", "5e-3"]
    train_main([*args, "--out", str(tmp_path / "one")])
    _two_nodes("training.train", [*args, "--out", str(tmp_path / "two")])
    one, two = read_card(tmp_path / "one"), read_card(tmp_path / "two")
    assert two["world_size"] == 2 and two["steps"] == 2
    assert two["metrics"]["train_loss"] == pytest.approx(one["metrics"]["train_loss"], abs=1e-4)
