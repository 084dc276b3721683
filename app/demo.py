"""`xmodal demo`: the embedded default, end to end, idempotent.

1. prepare the five real corpora (skips finished items),
2. train the default model (dual encoder, then VQA + caption heads) into XMODAL_HOME/models/default
   unless it is there; a killed run resumes,
3. build the `demo` index (openclipart + photos + videos) unless CURRENT was embedded by that model,
4. serve the API and the web page.

Each step is the same code path as its own subcommand; re-running after an interruption resumes.
"""

import typer

from training.cli_util import run
from training.home import models_dir

cli = typer.Typer(no_args_is_help=False, pretty_exceptions_enable=False)

DEMO_INDEX = "demo"
DEMO_CORPORA = "openclipart,photos,videos"


def _index_fingerprint(name: str) -> str | None:
    """The model fingerprint recorded by the published version of index `name`, if any."""
    from index.search import list_indexes

    return next((i["fingerprint"] for i in list_indexes() if i["name"] == name), None)


@cli.callback(invoke_without_command=True)
def demo(
    host: str = typer.Option("127.0.0.1", help="interface to bind; 0.0.0.0 exposes the service"),
    port: int = typer.Option(8000, help="TCP port"),
    serve: bool = typer.Option(True, help="--no-serve: prepare, train and index, then stop"),
) -> None:
    """Prepare corpora, train the default model, index the demo corpus and serve it."""
    from index.cli import main as index_main
    from training.data.cli import main as data_main
    from training.factory import read_card
    from training.train import main as train_main

    typer.secho("[1/4] corpora", bold=True)
    data_main(["prepare", "all"])

    model_dir = models_dir() / "default"
    card = read_card(model_dir)
    trained = card.get("fingerprint") and card.get("steps") == card.get("total_steps")
    if trained and "heads" in card:
        typer.secho(f"[2/4] default model present: {model_dir} ({card['fingerprint']})", bold=True)
    else:
        typer.secho("[2/4] training the default model (about 6 minutes on 2 cores)", bold=True)
        # a killed run continues, in its contrastive steps or its heads stage
        resume = ["--resume"] if card.get("fingerprint") else []
        train_main(["--preset", "default", "--out", str(model_dir), *resume])
        card = read_card(model_dir)
    from training.understand import Calibration, calibrate_on_corpora

    if Calibration.outdated(card):  # the caption and VQA solvers' thresholds (training/understand.py)
        from training.factory import load_model, write_card

        typer.secho("[2/4] calibrating the caption and VQA solvers on held-out data", bold=True)
        card = write_card(model_dir, {"understanding": calibrate_on_corpora(load_model(model_dir))})

    if _index_fingerprint(DEMO_INDEX) == card.get("fingerprint"):
        typer.secho(f"[3/4] index '{DEMO_INDEX}' is current for this model", bold=True)
    else:
        typer.secho(f"[3/4] indexing {DEMO_CORPORA} into '{DEMO_INDEX}'", bold=True)
        index_main(["build", "--model", str(model_dir), "--corpus", DEMO_CORPORA, "--name", DEMO_INDEX])

    if not serve:
        return
    from app.serve import main as serve_main

    typer.secho("[4/4] serving", bold=True)
    serve_main(["--model", str(model_dir), "--index", DEMO_INDEX, "--host", host, "--port", str(port)])


def main(argv: list[str] | None = None):
    return run(cli, argv)
