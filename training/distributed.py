"""The one torchrun hook-up, shared by training (training/trainer.py) and indexing (index/runner.py).

env = init_distributed()   # reads RANK / WORLD_SIZE / LOCAL_RANK; joins the process group when
env.rank, env.world        # WORLD_SIZE > 1 (NCCL with CUDA, gloo otherwise)
env.device                 # this rank's GPU when there is one, else the CPU
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_distributed() -> DistEnv:
    """This process's place in a torchrun launch (rank 0 of 1 without one); idempotent."""
    env = DistEnv(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
    if env.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return env
