"""`xmodal eval --model DIR`: the metrics of training/evaluate.py, printed as a table and merged into
card.json. torch is imported inside the command so `xmodal --help` stays fast."""

from pathlib import Path

import typer

from training.cli_util import run
from training.errors import XModalError

cli = typer.Typer(no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False)


def format_table(metrics: dict) -> str:
    """One row per evaluation, one column per metric."""
    lines = []
    for name, values in metrics.items():
        if isinstance(values, dict):
            cells = "  ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
            )
            lines.append(f"{name:<44} {cells}")
    return "\n".join(lines)


@cli.callback(invoke_without_command=True)
def evaluate(
    model: str = typer.Option(..., help="Model directory (or a registry name: untrained heads)."),
    retrieval: str = typer.Option("openclipart", help="Corpus for text<->image recall (its test split)."),
    classify: str = typer.Option("fashion-mnist", help="Labelled corpus for prompt classification."),
    limit: int = typer.Option(None, help="Evaluate on at most N test images per corpus (seeded sample)."),
    write: bool = typer.Option(True, help="Merge the metrics into the model's card.json."),
    calibrate: bool = typer.Option(
        True,
        help="Measure the caption/VQA solvers' thresholds on held-out data first (card 'understanding').",
    ),
) -> None:
    """Evaluate a model: retrieval recall, prompt classification, the real-photo set (VQA, captions,
    text->photo, text->video); calibrates the caption and VQA solvers first."""
    from training.evaluate import evaluate_model
    from training.factory import load_model, read_card, write_card

    if limit is not None and limit < 1:
        raise XModalError(f"--limit must be positive, got {limit}")
    m = load_model(model)
    card = read_card(model) if Path(model).is_dir() else {}
    if calibrate:
        from training.understand import calibrate_on_corpora

        card["understanding"] = calibrate_on_corpora(m)
    metrics = evaluate_model(m, card, retrieval, classify, limit)
    typer.echo(format_table(metrics))
    if write and Path(model).is_dir():
        updates = {"metrics": {**card.get("metrics", {}), **metrics}}
        if calibrate:
            updates["understanding"] = card["understanding"]
        write_card(model, updates)


def main(argv: list[str] | None = None):
    """Entry point for tests: `main(["--model", dir])`."""
    return run(cli, argv)
