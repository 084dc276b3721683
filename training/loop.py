"""The one training loop: `xmodal train` (training/trainer.py) and the heads stage (training/heads/fit.py)
both step through `train_steps`.

    opt = adamw(params, lr, weight_decay)
    result = train_steps(model, tasks, opt, total=1000, lr=1e-3, warmup=50)
        -> {"seconds", "loss/<task>"}      wall time; each task's loss at the last step, mean over ranks

Every step draws one batch of every task, minimises the weighted sum of their losses (`TaskLoss`) with
the learning rate `lr_at(step)` (linear warmup, cosine decay), clips the gradient norm, and calls
`save(step, loss, wall_s)` every `save_every` steps and at the end. A task's batch follows from the
global step alone (its epoch and position), so a run started at `start` continues a killed one exactly.

Under torchrun (`env.world > 1`) DDP wraps `TaskLoss`, a module whose forward is the weighted sum of the
tasks' losses, because tasks call the model's encode methods rather than its forward: DDP then averages
the gradients across ranks (overlapping the all-reduce with backward) and the contrastive loss
all-gathers features.
"""

import math
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training.distributed import DistEnv
from training.model import XModalModel
from training.tasks import Task


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then cosine decay to zero at `total`."""
    warmup = min(warmup, total // 5)
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases, norms and temperatures (open_clip's rule)."""
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr
    )


class TaskLoss(nn.Module):
    """forward(batches by task name) -> (weighted total, {task: loss}): the tasks as one module for DDP."""

    def __init__(self, model: XModalModel, tasks: list[Task]):
        super().__init__()
        self.model = model
        self.tasks = tasks

    def forward(self, batches: dict[str, dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = {t.name: t.loss(self.model, batches[t.name]) for t in self.tasks}
        return sum(t.weight * losses[t.name] for t in self.tasks), losses


class _Batches:
    """Each task's batch for a global step: epoch and position follow from the step alone."""

    def __init__(self, env: DistEnv, seed: int):
        self.env, self.seed = env, seed
        self._iters: dict[str, tuple] = {}  # task name -> (epoch, iterator over that epoch's batches)

    def __call__(self, task: Task, step: int) -> dict:
        epoch, pos = divmod(step, task.batches_per_epoch(self.env.world))
        it = self._iters.get(task.name)
        if it is None or it[0] != epoch:
            batches = task.batches(self.env.rank, self.env.world, self.seed, epoch, pos)
            it = self._iters[task.name] = (epoch, batches)
        return next(it[1])


def train_steps(
    model: XModalModel,
    tasks: list[Task],
    opt: torch.optim.Optimizer,
    total: int,
    lr: float,
    warmup: int = 0,
    *,
    start: int = 0,
    seed: int = 0,
    grad_clip: float | None = None,
    env: DistEnv | None = None,
    save: Callable[[int, float, float], None] | None = None,
    save_every: int = 0,
    desc: str = "train",
    progress: bool = True,
) -> dict:
    """Steps from `start` to `total` (see the module docstring). `save_every` 0: save only at the end.
    Returns {"seconds", "loss/<task>"}; the model is left in train mode."""
    env = env or DistEnv(rank=0, world=1, local_rank=0)
    device = model.device
    params = [p for g in opt.param_groups for p in g["params"]]
    task_loss = TaskLoss(model, tasks)
    if env.world > 1:  # broadcast_buffers off: batch norm is frozen, the bridge's class table fixed
        ids = [device.index] if device.type == "cuda" else None
        task_loss = DistributedDataParallel(
            task_loss, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True
        )
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    samples = sum(getattr(t, "global_batch", 0) for t in tasks)  # per step, all ranks
    batch = _Batches(env, seed)
    model.train()
    bar = tqdm(total=total, initial=start, desc=desc, unit="step", disable=env.rank != 0 or not progress)
    began, step, loss_value, last = time.time(), start, float("nan"), {}
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, lr, warmup)
        with amp:
            loss, losses = task_loss({t.name: batch(t, step) for t in tasks})
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP, gradients arrive averaged over the ranks
        logged = torch.stack([loss.detach().float(), *[v.detach().float() for v in losses.values()]])
        if env.world > 1:  # the logged losses: the mean over ranks
            dist.all_reduce(logged)
            logged /= env.world
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if model.logit_scale.requires_grad:  # a frozen temperature (heads-only runs) stays as loaded
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
        step += 1
        loss_value = logged[0].item()
        last = dict(zip(losses, logged[1:].tolist(), strict=True))
        rate = samples * (step - start) / max(time.time() - began, 1e-9)
        bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{rate:.0f}")
        bar.update()
        if save is not None and ((save_every and step % save_every == 0) or step == total):
            save(step, loss_value, time.time() - began)
    bar.close()
    return {"seconds": time.time() - began, **{f"loss/{name}": v for name, v in last.items()}}
