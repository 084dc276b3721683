"""`xmodal model show REF` and `xmodal model import REF --name N`: what a model reference resolves to, and
a copy of it as an ordinary model dir under XMODAL_HOME/models (serve, fine-tune, copy elsewhere).
torch is imported inside the commands so `xmodal --help` stays fast."""

import json
import shutil
from typing import Annotated

import typer

from training.cli_util import run
from training.errors import XModalError

cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

Ref = Annotated[str, typer.Argument(help="Any model reference (README: 'Models you bring').")]


def describe(model) -> dict:
    """Architecture, embedding dim, tokenizer, preprocessing, similarity rule, fingerprint and heads."""
    inner = getattr(model, "clip", None) or getattr(model, "hf", None) or model
    tokenizer = getattr(model, "tokenizer", None)
    tok_name = type(getattr(tokenizer, "tokenizer", tokenizer)).__name__ if tokenizer is not None else None
    if model.config.kind == "openclip":
        preprocess = model.config.openclip_preprocess
    elif model.config.kind == "hf":
        preprocess = model.processor.to_dict()
        preprocess = {
            k: preprocess.get(k) for k in ("size", "crop_size", "image_mean", "image_std", "resample")
        }
    else:
        preprocess = {"size": model.image_size}
    return {
        "reference": model.config.name,
        "kind": model.config.kind,
        "architecture": type(inner).__name__,
        "embed_dim": model.embed_dim,
        "image_size": model.image_size,
        "tokenizer": tok_name,
        "context_length": getattr(model, "context_length", None),
        "preprocess": preprocess,
        "similarity": "sigmoid(scale * cos + bias)"
        if model.logit_bias is not None
        else "softmax(scale * cos)",
        "fingerprint": model.fingerprint,
        "heads": sorted(getattr(model, "heads", {}) or {}),
    }


@cli.command()
def show(ref: Ref, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print what REF resolves to: architecture, dims, tokenizer, preprocessing, fingerprint, heads."""
    from training.factory import load_model

    info = describe(load_model(ref))
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        typer.echo(f"{key:<15} {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")


@cli.command("import")
def import_(
    ref: Ref,
    name: Annotated[str, typer.Option("--name", help="Model id: the folder under XMODAL_HOME/models.")],
) -> None:
    """Write REF as an ordinary model dir (safetensors + card) under XMODAL_HOME/models."""
    from training.factory import load_model, save_model
    from training.home import models_dir

    if not name or "/" in name or name.startswith("."):
        raise XModalError(f"--name {name!r}: use a plain folder name")
    out = models_dir() / name
    if out.exists():
        raise XModalError(f"{out} already exists; choose another --name or remove it")
    model = load_model(ref)
    tmp = out.with_name(f".{name}.importing")
    shutil.rmtree(tmp, ignore_errors=True)
    fp = save_model(model, tmp, {"source": ref, "source_fingerprint": model.fingerprint})
    tmp.rename(out)  # readers never see a half-written dir
    typer.echo(f"imported {ref} as {out} (fingerprint {fp})")


def main(argv: list[str] | None = None):
    return run(cli, argv)
