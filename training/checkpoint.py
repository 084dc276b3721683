"""Trainer state beside a saved model, so `xmodal train --resume` continues a killed run exactly.

    OUT/trainer_state.safetensors   optimizer moments ("opt.<param index>.<name>"), torch RNG state;
                                    metadata: step, optimizer param groups, the run's TrainConfig (JSON)

Written atomically (training/atomic.py) before the model files; `load_state` refuses a state whose
step is not the step recorded in the model's card (a run killed between the two writes).
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from training.atomic import atomic_path
from training.errors import XModalError

STATE_FILE = "trainer_state.safetensors"


def saved_config(out: str | Path) -> dict:
    """The TrainConfig (as a dict) of the run saved in `out`; XModalError when there is none."""
    path = Path(out) / STATE_FILE
    if not path.is_file():
        raise XModalError(f"--resume: no checkpoint in {out} (missing {STATE_FILE}); start without --resume")
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["config"])


def save_state(out: Path, opt: torch.optim.Optimizer, step: int, config: dict) -> None:
    """Writes the optimizer, RNG and step of a run whose settings are `config` into `out`."""
    state = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "step": str(step),
        "param_groups": json.dumps(state["param_groups"]),
        "config": json.dumps(config),
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / STATE_FILE) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_state(out: Path, opt: torch.optim.Optimizer, card_step: int | None) -> int:
    """Restores the optimizer and RNG saved in `out`; returns the step to continue from."""
    with safe_open(str(out / STATE_FILE), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    step = int(meta["step"])
    if card_step != step:
        raise XModalError(f"--resume: {out} holds an incomplete checkpoint (killed while saving)")
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    torch.set_rng_state(tensors["rng.torch"])
    return step
