"""Shared fixtures: every test gets its own XMODAL_HOME; tiny models are built once per session."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models: OpenMP threads spinning against other processes on a busy 2-core machine make
    each small op many times slower than one thread does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny open_clip model (random weights): config.json, model.safetensors, card.json."""
    from training.factory import create_model, save_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("models") / "tiny-clip"
    save_model(create_model("tiny-clip"), out, {"note": "random init, for tests"})
    return out
