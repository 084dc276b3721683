"""Where inference runs: the device setting ("auto": CUDA when present), its autocast dtype, and pinned
host batches. Serve, index and eval all pick their device here.

    pick_device("auto")            -> cuda:LOCAL_RANK when CUDA is available, else cpu
    inference_autocast(model)      -> bf16 (fp16 where bf16 is unsupported) on CUDA; fp32 on CPU or
                                      when model.precision == "fp32"
    to_device(batch, device)       -> pinned + non-blocking copy to a GPU; a plain .to() on CPU
"""

import os
from contextlib import nullcontext

import torch

from training.errors import XModalError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: this rank's GPU when CUDA is available, else the CPU; or an explicit cpu / cuda[:N]."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise XModalError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise XModalError(f"device {name!r}: no CUDA device on this machine; use auto or cpu")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype inference autocasts to, or None for fp32. CPU stays fp32 (bf16 matmuls are slower
    than fp32 on CPUs without AMX)."""
    if precision not in PRECISIONS:
        raise XModalError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32" or device.type != "cuda":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def inference_autocast(model):
    """A context manager: autocast for `model` on its device by `model.precision` (default auto)."""
    device = model.device
    dtype = autocast_dtype(device, getattr(model, "precision", "auto"))
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device`: through pinned memory, without blocking, when that is a GPU."""
    if device.type != "cuda":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)
