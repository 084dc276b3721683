"""Device choice, inference autocast, pinned batches and the one FAISS GPU placement, on a CPU host:
the CUDA and FAISS GPU checks are monkeypatched where the branch they pick is the point."""

import pytest
import torch

from index import build
from training import devices
from training.errors import XModalError


def test_auto_is_the_cpu_without_cuda_and_this_ranks_gpu_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.pick_device("auto") == torch.device("cpu")
    with pytest.raises(XModalError, match="no CUDA device"):
        devices.pick_device("cuda")
    with pytest.raises(XModalError, match="expected auto, cpu, cuda"):
        devices.pick_device("tpu-please")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert devices.pick_device("auto") == torch.device("cuda", 1)
    assert devices.pick_device("cuda:0") == torch.device("cuda", 0)


def test_autocast_dtype_by_device_and_setting(monkeypatch):
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert devices.autocast_dtype(cpu, "auto") is None and devices.autocast_dtype(cpu, "bf16") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.autocast_dtype(cuda, "auto") is torch.bfloat16
    assert devices.autocast_dtype(cuda, "fp32") is None  # the setting that forces fp32
    assert devices.autocast_dtype(cuda, "fp16") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert devices.autocast_dtype(cuda, "auto") is torch.float16
    with pytest.raises(XModalError, match="precision 'fp8'"):
        devices.autocast_dtype(cuda, "fp8")


def test_cpu_inference_runs_fp32_and_unpinned(tiny_model):
    batch = torch.randn(2, 3, tiny_model.image_size, tiny_model.image_size)
    moved = devices.to_device(batch, torch.device("cpu"))
    assert torch.equal(moved, batch) and not moved.is_pinned()
    with devices.inference_autocast(tiny_model):
        out = tiny_model.encode_image(moved, normalize=True)
    assert out.dtype is torch.float32


def test_service_settings_default_to_auto_and_pass_the_precision(settings):
    from app.config import Settings
    from app.registry import Registry

    assert Settings().device == "auto" and Settings().precision == "auto"
    settings.precision, settings.warmup = "fp32", False
    model, *_ = Registry(settings)._load_model(settings.model)
    assert model.precision == "fp32" and model.device == torch.device("cpu")


def test_one_gpu_placement_helper(monkeypatch):
    import faiss

    index = faiss.IndexFlatIP(4)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert build.to_gpus(index) == (index, False)  # never index_cpu_to_all_gpus without a GPU
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda ix: ("on gpu", ix))
    assert build.to_gpus(index) == (("on gpu", index), True)

    def no_gpu_version(ix):
        raise RuntimeError("HNSW has no GPU version")

    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", no_gpu_version)
    assert build.to_gpus(index) == (index, False)
