"""Two processes under torchrun (gloo, CPU) take the same steps as one process on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.training.synthetic import make_corpus
from training.factory import create_model, load_model, read_card
from training.train import main

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed beside python")
def test_two_ranks_match_one(tmp_path):
    """tiny-clip trains every weight, so this covers gradient averaging and the all-gathered loss."""
    manifest = make_corpus()
    args = ["--model", "tiny-clip", "--data", "shapes", "--steps", "3", "--batch-size", "12", "--lr", "5e-3"]
    main([*args, "--out", str(tmp_path / "one")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [
        str(TORCHRUN),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "training.train",
        *args,
        "--out",
        str(tmp_path / "two"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = read_card(tmp_path / "one"), read_card(tmp_path / "two")
    assert two["world_size"] == 2 and two["steps"] == 3
    assert two["metrics"]["train_loss"] == pytest.approx(one["metrics"]["train_loss"], abs=1e-4)
    # Compare what the models compute: weights whose true gradient is zero (attention key biases) get
    # Adam updates from rounding noise that differs between one and two processes.
    images = [Image.open(p) for p in sorted((manifest.parent / "media").glob("*.png"))[:6]]
    texts = ["a red circle", "a blue square", "triangle in green"]
    m1, m2 = load_model(tmp_path / "one"), load_model(tmp_path / "two")
    assert torch.allclose(m1.embed_images(images), m2.embed_images(images), atol=1e-4)
    assert torch.allclose(m1.embed_texts(texts), m2.embed_texts(texts), atol=1e-4)
    untrained = create_model("tiny-clip")
    assert not torch.allclose(untrained.embed_texts(texts), m2.embed_texts(texts), atol=1e-3)
