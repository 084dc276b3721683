"""`xmodal train`: optimise a weighted sum of tasks (contrastive, vqa, caption) on prepared corpora.

    xmodal train --model lit-effnet-minilm --data openclipart,fashion-mnist --out var/models/m --epochs 10
    xmodal train --preset default                       # the default model, into XMODAL_HOME/models/default
    torchrun --nproc_per_node=2 -m training.train ...   # DDP: gloo on CPU, NCCL on GPU; data sharded per rank

AdamW with linear warmup then cosine decay, gradient clipping, bf16 autocast on GPU only, seeded: the
one training loop (training/loop.py), which the heads stage (training/heads/fit.py) runs too.
Locked towers' outputs come from the feature cache (training/features.py). Every `--save-every` steps
and at the end the model is saved (save_model: config, safetensors, card.json) together with the
trainer state (optimizer, RNG, step), so `--resume` continues a killed run exactly: batches are a
pure function of (seed, epoch, position), and the position follows from the step. A run killed in its
heads stage (`fit_heads`, after every contrastive step was saved) resumes with that stage.
"""

import json
import os
import sys

import typer

from training.cli_util import run
from training.config import resolve_config
from training.errors import XModalError

cli = typer.Typer(no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False)


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
    from training.factory import read_card
    from training.trainer import Trainer

    cfg = resolve_config(preset, given, resume)
    trainer = Trainer(cfg, resume=resume)
    if resume and trainer.finished and cfg.fit_heads and "heads" not in read_card(trainer.out):
        out_dir = trainer.out  # killed in its heads stage: every contrastive step is saved
    else:
        out_dir = trainer.fit()
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
