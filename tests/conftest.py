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


@pytest.fixture(scope="session")
def byo_layouts(tmp_path_factory):
    """Tiny open_clip and transformers models in every layout users bring (tests/byo_models.py)."""
    from tests.byo_models import build_layouts

    return build_layouts(tmp_path_factory.mktemp("byo"))


@pytest.fixture
def hub_offline(byo_layouts, monkeypatch):
    """The HF cache at the test layouts, offline. huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE when
    it is imported, so the constants are set too; subprocesses get the environment variables."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(byo_layouts["hub_cache"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(byo_layouts["hub_cache"]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return byo_layouts
