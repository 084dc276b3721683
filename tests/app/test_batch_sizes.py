"""Batch sizes per device kind: XMODAL_BATCH__MAX_BATCH_SIZE__{CPU,CUDA} for the service's batchers and
XMODAL_INDEX_BATCH_SIZE__{CPU,CUDA} for `xmodal index build/add`, picked by the device the model runs on."""

import json

import pytest
import torch

from app.config import BatchSettings, Settings
from app.inference import Encoders
from index.cli import _batch_size, main
from index.search import open_index
from tests.index.helpers import write_corpus


@pytest.mark.parametrize(
    ("device", "serve", "index"), [("cpu", 6, 3), ("cuda", 96, 512), ("cuda:1", 96, 512)]
)
def test_the_devices_kind_picks_the_size(monkeypatch, device, serve, index):
    monkeypatch.setenv("XMODAL_BATCH__MAX_BATCH_SIZE__CPU", "6")
    monkeypatch.setenv("XMODAL_BATCH__MAX_BATCH_SIZE__CUDA", "96")
    monkeypatch.setenv("XMODAL_INDEX_BATCH_SIZE__CPU", "3")
    monkeypatch.setenv("XMODAL_INDEX_BATCH_SIZE__CUDA", "512")
    settings = Settings()
    assert settings.batch.max_batch_size.for_device(torch.device(device)) == serve
    assert _batch_size(None, torch.device(device)) == index
    assert _batch_size(7, torch.device(device)) == 7  # --batch-size wins


def test_defaults_and_one_number_for_both_kinds(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    s = Settings()
    assert (s.batch.max_batch_size.for_device(cpu), s.batch.max_batch_size.for_device(cuda)) == (32, 128)
    assert (s.index_batch_size.for_device(cpu), s.index_batch_size.for_device(cuda)) == (64, 256)
    monkeypatch.setenv("XMODAL_BATCH__MAX_BATCH_SIZE", "16")  # the setting's older, single-number form
    monkeypatch.setenv("XMODAL_INDEX_BATCH_SIZE__CUDA", "1024")  # one kind; the other keeps its default
    s = Settings()
    assert (s.batch.max_batch_size.cpu, s.batch.max_batch_size.cuda) == (16, 16)
    assert (s.index_batch_size.cpu, s.index_batch_size.cuda) == (64, 1024)


def test_a_bad_size_is_one_clear_line(monkeypatch):
    from training.errors import XModalError

    monkeypatch.setenv("XMODAL_INDEX_BATCH_SIZE__CPU", "0")
    with pytest.raises(XModalError, match="index_batch_size.cpu"):
        _batch_size(None, torch.device("cpu"))


@pytest.mark.parametrize(("device", "size"), [("cpu", 5), ("cuda", 40)])
def test_service_batchers_hold_the_devices_size(device, size):
    encoders = Encoders(BatchSettings(max_batch_size={"cpu": 5, "cuda": 40}), torch.device(device))
    try:
        assert {b.max_batch_size for b in (encoders.text, encoders.image, encoders.text_search_batcher)} == {
            size
        }
    finally:
        encoders.close()


def test_index_build_uses_the_setting_unless_given(tmp_path, tiny_model_dir, monkeypatch):
    corpus = write_corpus(tmp_path / "images", 7)
    monkeypatch.setenv("XMODAL_INDEX_BATCH_SIZE__CPU", "3")
    base = [
        "build",
        "--model",
        str(tiny_model_dir),
        "--manifest",
        str(corpus),
        "--workers",
        "0",
        "--no-progress",
    ]
    main([*base, "--name", "by-setting", "--device", "cpu"])
    main([*base, "--name", "by-flag", "--device", "cpu", "--batch-size", "5"])
    for name, size in (("by-setting", 3), ("by-flag", 5)):
        idx = open_index(name)
        assert json.loads((idx.path / "report.json").read_text())["batch_size"] == size
        idx.close()
