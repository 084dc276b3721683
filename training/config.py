"""What a training run does: `TrainConfig`, the named presets, and `resolve_config`, which layers
defaults, a preset, a resumed run's saved settings and the user's flags (training/train.py parses them;
training/trainer.py runs the result)."""

from dataclasses import dataclass, field

from training.checkpoint import saved_config
from training.errors import XModalError
from training.home import models_dir

TASK_NAMES = ("contrastive", "vqa", "caption")


@dataclass
class TrainConfig:
    model: str = "lit-effnet-minilm"  # registry name (fresh), or any model reference to continue from
    data: list[str] = field(default_factory=list)  # corpus names (train splits)
    tasks: dict[str, float] = field(default_factory=lambda: {"contrastive": 1.0})  # name -> loss weight
    out: str = ""
    steps: int | None = None  # total optimiser steps; default: epochs x batches per epoch of the first task
    epochs: int = 1
    batch_size: int = 64  # global, across ranks
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50  # steps; capped at a fifth of the run
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 500
    limits: dict[str, int] = field(default_factory=dict)  # corpus -> max train items (seeded subsample)
    unlock_image_blocks: int = 0
    unlock_text_layers: int = 0
    lock_image: bool = False  # freeze a pretrained model's image tower (LiT on a CLIP)
    lock_text: bool = False
    cache: bool = True  # use the frozen-tower feature cache when both towers are locked
    fit_heads: bool = False  # afterwards, fit VQA + caption heads on the frozen encoder (heads/fit.py)


# The default model: LiT heads on cached locked-tower features. ~9k images to embed once (EfficientNet-Lite0
# at 224 px: ~35 images/s on 2 idle cores, ~4 minutes); training on the cache then takes about a minute.
# Cold, the whole preset with its heads stage takes about 6 minutes here (bench/preset.py).
# More clip art raised openclipart test t2i R@10 (2k items: 0.30, 4k: 0.39), so all of it is used.
# 20 epochs, not 40: the projections overfit the clip art. Measured on cached features (R@10 of clip art
# text->image / real photos among clip art): 20 epochs 0.524/0.681, 0.509/0.638, 0.520/0.681 over seeds
# 0-2; 40 epochs 0.469/0.660, 0.480/0.638 over seeds 0-1; 10: 0.528/0.617; 30: 0.480/0.702 (before
# centre_bridge, which gives 0.502/0.723, 0.506/0.681, 0.491/0.681 at 20 epochs: towers.py).
PRESETS = {
    "default": {
        "model": "lit-effnet-minilm",
        "data": ["openclipart", "fashion-mnist", "easy-vqa"],
        "limits": {"fashion-mnist": 2000, "easy-vqa": 300},  # all ~6.7k openclipart train items
        "epochs": 20,
        "batch_size": 256,
        "lr": 2e-3,
        "weight_decay": 0.05,
        "save_every": 1000,
        "fit_heads": True,
    },
}


def resolve_config(preset: str | None, given: dict, resume: bool = False) -> TrainConfig:
    """Defaults, then the preset, then (with --resume) the saved run's settings, then the flags the
    user gave (None = not given)."""
    if preset is not None and preset not in PRESETS:
        raise XModalError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values = {**(PRESETS[preset] if preset else {}), **{k: v for k, v in given.items() if v is not None}}
    if preset and not values.get("out"):
        values["out"] = str(models_dir() / preset)
    if resume:
        if not values.get("out"):
            raise XModalError("--resume needs --out DIR (the run to continue)")
        values = {**saved_config(values["out"]), **{k: v for k, v in given.items() if v is not None}}
    cfg = TrainConfig(**values)
    if not cfg.out:
        raise XModalError("--out DIR is required (or use --preset)")
    if not cfg.data:
        raise XModalError("--data CORPUS[,CORPUS...] is required (or use --preset)")
    for name in cfg.tasks:
        if name not in TASK_NAMES:
            raise XModalError(f"--task {name!r}: unknown task; known: {', '.join(TASK_NAMES)}")
    checks = {
        "batch_size": cfg.batch_size >= 1,
        "epochs": cfg.epochs >= 1,
        "lr": cfg.lr > 0,
        "save_every": cfg.save_every >= 1,
        "steps": cfg.steps is None or cfg.steps >= 1,
    }
    for flag, ok in checks.items():
        if not ok:
            raise XModalError(f"--{flag.replace('_', '-')} must be positive, got {getattr(cfg, flag)}")
    return cfg
