"""`xmodal train`: optimise a weighted sum of tasks (contrastive, vqa, caption) on prepared corpora.

    xmodal train --model lit-effnet-minilm --data openclipart,fashion-mnist --out var/models/m --epochs 10
    xmodal train --preset default                       # the default model, into XMODAL_HOME/models/default
    torchrun --nproc_per_node=2 -m training.train ...   # DDP: gloo on CPU, NCCL on GPU; data sharded per rank

AdamW with linear warmup then cosine decay, gradient clipping, bf16 autocast on GPU only, seeded.
Locked towers' outputs come from the feature cache (training/features.py). Every `--save-every` steps
and at the end the model is saved (save_model: config, safetensors, card.json) together with the
trainer state (optimizer, RNG, step), so `--resume` continues a killed run exactly: batches are a
pure function of (seed, epoch, position), and the position follows from the step.
"""

import json
import os
import sys
from dataclasses import dataclass, field

import typer

from training.cli_util import run
from training.errors import XModalError

cli = typer.Typer(no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False)

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
# Cold, the whole preset with its heads stage takes 7.5-8.5 minutes here (bench/preset.py).
# More clip art raised openclipart test t2i R@10 (2k items: 0.30, 4k: 0.39), so all of it is used.
PRESETS = {
    "default": {
        "model": "lit-effnet-minilm",
        "data": ["openclipart", "fashion-mnist", "easy-vqa"],
        "limits": {"fashion-mnist": 2000, "easy-vqa": 300},  # all ~6.7k openclipart train items
        "epochs": 40,
        "batch_size": 256,
        "lr": 2e-3,
        "weight_decay": 0.05,
        "save_every": 1000,
        "fit_heads": True,
    },
}


def _parse_weights(specs: list[str], what: str, cast) -> dict:
    """["contrastive=1", "vqa=0.5"] -> {"contrastive": 1.0, "vqa": 0.5}; XModalError on a bad spec."""
    out = {}
    for spec in specs:
        name, _, value = (part.strip() for part in spec.partition("="))
        try:
            if not name:
                raise ValueError(spec)
            out[name] = cast(value)
        except ValueError:
            raise XModalError(f"--{what} {spec!r}: expected NAME=NUMBER") from None
    return out


def resolve_config(preset: str | None, given: dict, resume: bool = False) -> TrainConfig:
    """Defaults, then the preset, then (with --resume) the saved run's settings, then the flags the
    user gave (None = not given)."""
    from training.home import models_dir

    if preset is not None and preset not in PRESETS:
        raise XModalError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values = {**(PRESETS[preset] if preset else {}), **{k: v for k, v in given.items() if v is not None}}
    if preset and not values.get("out"):
        values["out"] = str(models_dir() / preset)
    if resume:
        if not values.get("out"):
            raise XModalError("--resume needs --out DIR (the run to continue)")
        from training.trainer import saved_config

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


@cli.callback(invoke_without_command=True)
def train(
    model: str = typer.Option(
        None,
        help="Registry name (fresh: lit-effnet-minilm, tiny-clip, openclip:<arch>) or a model reference "
        "to continue from (saved dir, openclip:ARCH@TAG|FILE, hf-hub:, local-dir:, transformers dir).",
    ),
    data: str = typer.Option(None, help="Corpora to train on, comma-separated (their train splits)."),
    out: str = typer.Option(None, help="Model directory to write (checkpoints, card.json)."),
    task: list[str] = typer.Option(None, help="NAME=WEIGHT, repeatable: contrastive, vqa, caption."),
    steps: int = typer.Option(None, help="Total optimiser steps (overrides --epochs)."),
    epochs: int = typer.Option(None, help="Epochs of the first task's data."),
    batch_size: int = typer.Option(None, help="Global batch size, across all ranks."),
    lr: float = typer.Option(None, help="Peak learning rate (AdamW)."),
    weight_decay: float = typer.Option(None),
    warmup: int = typer.Option(None, help="Warmup steps."),
    grad_clip: float = typer.Option(None, help="Max gradient norm."),
    seed: int = typer.Option(None),
    save_every: int = typer.Option(None, help="Checkpoint every N steps."),
    limit: list[str] = typer.Option(None, help="CORPUS=N: use at most N training items of a corpus."),
    unlock_image_blocks: int = typer.Option(None, help="Train the image tower's top N blocks (LiT models)."),
    unlock_text_layers: int = typer.Option(None, help="Train the text tower's top N layers (LiT models)."),
    lock_image: bool = typer.Option(False, "--lock-image", help="Freeze the image tower (LiT)."),
    lock_text: bool = typer.Option(False, "--lock-text", help="Freeze the text tower."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the frozen-tower feature cache."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    preset: str = typer.Option(None, help="Named settings: default."),
) -> None:
    """Train a dual encoder (and heads) on prepared corpora."""
    given = {
        "model": model,
        "out": out,
        "steps": steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "grad_clip": grad_clip,
        "seed": seed,
        "save_every": save_every,
        "unlock_image_blocks": unlock_image_blocks,
        "unlock_text_layers": unlock_text_layers,
        "data": [d.strip() for d in data.split(",") if d.strip()] if data else None,
        "tasks": _parse_weights(task, "task", float) if task else None,
        "limits": _parse_weights(limit, "limit", int) if limit else None,
        "cache": False if no_cache else None,
        "lock_image": lock_image or None,
        "lock_text": lock_text or None,
    }
    from training.trainer import Trainer

    cfg = resolve_config(preset, given, resume)
    out_dir = Trainer(cfg, resume=resume).fit()
    if cfg.fit_heads and int(os.environ.get("RANK", "0")) == 0:
        from training.heads.fit import fit_default_heads

        card = fit_default_heads(out_dir)
        typer.echo(f"heads: {json.dumps({k: v for k, v in card['heads'].items() if '/' in k})}")
    typer.echo(f"model saved to {out_dir}")


def main(argv: list[str] | None = None):
    """Entry point for `python -m training.train` (torchrun) and tests."""
    return run(cli, argv)


if __name__ == "__main__":  # torchrun entry; user errors print one line, as under `xmodal train`
    try:
        main(sys.argv[1:])
    except XModalError as e:
        sys.exit(f"error: {e}")
