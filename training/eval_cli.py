"""`xmodal eval --model DIR`: the metrics of training/evaluate.py, printed as a table and merged into
card.json. torch is imported inside the command so `xmodal --help` stays fast."""

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
    model: str = typer.Option(..., help="A model reference: saved dir, openclip:, hf-hub:, local-dir:, ..."),
    retrieval: str = typer.Option("openclipart", help="Corpus for text<->image recall (its test split)."),
    classify: str = typer.Option("fashion-mnist", help="Labelled corpus for prompt classification."),
    limit: int = typer.Option(None, help="Evaluate on at most N test images per corpus (seeded sample)."),
    write: bool = typer.Option(True, help="Merge the metrics into the model's card.json."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    calibrate: bool = typer.Option(
        True,
        help="Measure the caption/VQA solvers' thresholds on held-out data first (card 'understanding').",
    ),
) -> None:
    """Evaluate a model: retrieval recall, prompt classification, the real-photo set (VQA, captions,
    text->photo, text->video); calibrates the caption and VQA solvers first."""
    from training.devices import pick_device
    from training.evaluate import evaluate_model
    from training.factory import load_model, model_dir_of, read_card, write_card

    if limit is not None and limit < 1:
        raise XModalError(f"--limit must be positive, got {limit}")
    m = load_model(model, device=pick_device(device))
    saved = model_dir_of(model)  # metrics go into a saved xmodal dir's card; other references print only
    card = read_card(saved) if saved else {}
    if calibrate:
        from training.understand import calibrate_on_corpora

        card["understanding"] = calibrate_on_corpora(m)
    metrics = evaluate_model(m, card, retrieval, classify, limit)
    typer.echo(format_table(metrics))
    if write and saved:
        updates = {"metrics": {**card.get("metrics", {}), **metrics}}
        if calibrate:
            updates["understanding"] = card["understanding"]
        write_card(saved, updates)


def main(argv: list[str] | None = None):
    """Entry point for tests: `main(["--model", dir])`."""
    return run(cli, argv)
