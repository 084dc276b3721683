"""`xmodal train`: builds the model, tasks and optimiser from a TrainConfig and runs the one training loop
(training/loop.py) to the configured step (flags: training/train.py; settings and presets:
training/config.py; resumable state: training/checkpoint.py). One process or many under torchrun.
"""

from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from training.checkpoint import load_state, save_state
from training.config import TrainConfig
from training.distributed import init_distributed
from training.errors import XModalError
from training.factory import load_model, read_card, save_model, starting_model
from training.loop import adamw, train_steps
from training.model import XModalModel
from training.tasks import ContrastiveTask, Task


def _subsample(keys: list[str], limit: int | None, seed: int) -> set[str]:
    if limit is None or limit >= len(keys):
        return set(keys)
    g = torch.Generator().manual_seed(seed)
    return {keys[i] for i in torch.randperm(len(keys), generator=g)[:limit].tolist()}


class Trainer:
    """Builds the model, tasks and optimiser from a TrainConfig; `fit()` runs to cfg.steps."""

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self._init_distributed()
        torch.manual_seed(cfg.seed)
        self.model = self._build_model(resume).to(self.device)
        self.tasks = self._build_tasks()
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise XModalError(f"model {cfg.model!r} has nothing to train")
        self.opt = adamw(params, cfg.lr, cfg.weight_decay)
        first = self.tasks[0].batches_per_epoch(self.world)
        self.total = cfg.steps or cfg.epochs * first
        self.step = self._resumed_step() if resume else 0

    # --- setup -------------------------------------------------------------------------------------

    def _init_distributed(self) -> None:
        self.env = env = init_distributed()
        self.world, self.rank, self.device = env.world, env.rank, env.device
        if self.cfg.batch_size % self.world:
            raise XModalError(f"--batch-size {self.cfg.batch_size} is not divisible by {self.world} ranks")

    def _build_model(self, resume: bool) -> XModalModel:
        cfg = self.cfg
        if resume:
            return load_model(self.out)
        return starting_model(
            cfg.model, cfg.unlock_image_blocks, cfg.unlock_text_layers, cfg.lock_image, cfg.lock_text
        )

    def _build_tasks(self) -> list[Task]:
        from training.data.corpora import corpus_manifest
        from training.data.manifest import load_manifest
        from training.heads import attach_heads
        from training.heads.tasks import CaptionTask, VQATask, caption_pairs, qa_examples

        cfg = self.cfg
        unknown = set(cfg.limits) - set(cfg.data)
        if unknown:
            raise XModalError(f"--limit names corpora not in --data: {', '.join(sorted(unknown))}")
        pairs, examples = [], []
        for corpus in cfg.data:
            manifest = corpus_manifest(corpus)
            keys = [f"{manifest.parent.name}/{it.id}" for it in load_manifest(manifest, ("train",))]
            keep = _subsample(keys, cfg.limits.get(corpus), cfg.seed)
            pairs += [p for p in caption_pairs(manifest) if p.key in keep]
            if "vqa" in cfg.tasks:
                examples += [e for e in qa_examples(manifest) if e.key in keep]
        self.data_counts = {"pairs": len(pairs), "qa": len(examples)}
        tasks: list[Task] = []
        for name, weight in cfg.tasks.items():
            if name == "contrastive":
                if not pairs:
                    raise XModalError(f"no captioned train images in {', '.join(cfg.data)}")
                tasks.append(
                    ContrastiveTask(pairs, self.model, cfg.batch_size, weight, self._features(pairs))
                )
            elif name == "vqa":
                if not examples:
                    raise XModalError(f"--task vqa: no question-answer pairs in {', '.join(cfg.data)}")
                tasks.append(VQATask(examples, cfg.batch_size, weight))
            else:
                tasks.append(CaptionTask(pairs, cfg.batch_size, weight))
            head_config = getattr(tasks[-1], "head_config", None)
            if head_config and name not in getattr(self.model, "heads", {}):
                attach_heads(self.model, {name: head_config()})
        for t in tasks:
            if t.batches_per_epoch(self.world) == 0:
                raise XModalError(f"task {t.name}: --batch-size {cfg.batch_size} exceeds its training data")
        return tasks

    def _features(self, pairs):
        if not (self.cfg.cache and self.model.image_locked and self.model.text_locked):
            return None
        from training.features import FeatureStore

        store = FeatureStore(self.model)
        for turn in (0, 1):  # rank 0 computes and writes the cache; the others then read it
            if (self.rank == 0) == (turn == 0):
                store.prepare(pairs)
            self._barrier()
        if hasattr(self.model, "remember_training_images"):  # LiT: domain-aware bridge share (towers.py)
            self.model.remember_training_images(store.images([p.key for p in pairs]), self.cfg.seed)
        return store

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    # --- checkpoints -------------------------------------------------------------------------------

    def _save(self, step: int, loss: float, wall: float) -> None:
        if self.rank == 0:
            save_state(self.out, self.opt, step, asdict(self.cfg))
            card = {
                "data": {"corpora": self.cfg.data, "limits": self.cfg.limits, **self.data_counts},
                "tasks": self.cfg.tasks,
                "steps": step,
                "total_steps": self.total,
                "batch_size": self.cfg.batch_size,
                "lr": self.cfg.lr,
                "world_size": self.world,
                "metrics": {**read_card(self.out).get("metrics", {}), "train_loss": round(loss, 4)},
                "train_wall_s": round(wall, 1),
            }
            save_model(self.model, self.out, card)
        self._barrier()

    def _resumed_step(self) -> int:
        """The saved run's step; its optimizer state is restored only when steps remain (a finished run
        may have gained heads since, so its parameters no longer match that state)."""
        saved = read_card(self.out).get("steps")
        if saved is not None and saved >= self.total:
            return saved
        return load_state(self.out, self.opt, saved)

    # --- loop --------------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Every step is done (a resumed run that was saved at its last step)."""
        return self.step >= self.total

    def fit(self) -> Path:
        """Trains to the configured number of steps; returns the model directory."""
        cfg = self.cfg
        if self.finished:
            raise XModalError(
                f"{self.out} already trained {self.step} of {self.total} steps; nothing to resume"
            )
        train_steps(
            self.model, self.tasks, self.opt, self.total, cfg.lr, cfg.warmup,
            start=self.step, seed=cfg.seed, grad_clip=cfg.grad_clip, env=self.env,
            save=self._save, save_every=cfg.save_every,
        )  # fmt: skip
        if self.world > 1:
            dist.destroy_process_group()
        return self.out
