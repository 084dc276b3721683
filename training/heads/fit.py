"""Training heads alone on a frozen encoder: everything outside `model.heads` is frozen, then the
tasks' weighted loss is minimised with AdamW. Multi-task runs that also train the towers go through
`xmodal train` (training/train.py) with the same Task objects."""

import time

import torch
from tqdm import tqdm

from training.model import XModalModel
from training.tasks import Task


def freeze_encoder(model: XModalModel) -> list[torch.nn.Parameter]:
    """Sets requires_grad=False outside model.heads; returns the head parameters that stay trainable."""
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("heads."))
        if p.requires_grad:
            trainable.append(p)
    return trainable


def train_heads(
    model: XModalModel, tasks: list[Task], epochs: int, lr: float = 1e-3, seed: int = 0, progress: bool = True
) -> dict:
    """Trains the heads for `epochs` passes over every task (batches interleaved task by task).
    Returns {"seconds": wall time, "loss/<task>": mean loss of the last epoch}."""
    torch.manual_seed(seed)
    params = freeze_encoder(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    total = epochs * sum(t.batches_per_epoch(1) for t in tasks)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.1)
    model.train()
    start, last = time.perf_counter(), {}
    with tqdm(total=total, desc="heads", unit="batch", disable=not progress) as bar:
        for epoch in range(epochs):
            sums = {t.name: [0.0, 0] for t in tasks}
            streams = [(t, t.batches(0, 1, seed, epoch)) for t in tasks]
            while streams:
                for t, it in list(streams):
                    batch = next(it, None)
                    if batch is None:
                        streams.remove((t, it))
                        continue
                    loss = t.loss(model, batch)
                    opt.zero_grad(set_to_none=True)
                    (t.weight * loss).backward()
                    opt.step()
                    sched.step()
                    sums[t.name][0] += loss.item()
                    sums[t.name][1] += 1
                    bar.update()
                    bar.set_postfix({t.name: f"{loss.item():.3f}"})
            last = {f"loss/{n}": s / max(c, 1) for n, (s, c) in sums.items()}
    model.eval()
    return {"seconds": time.perf_counter() - start, **last}
