"""The `xmodal` console script: one Typer app whose subcommands live with the code they drive.

Each subcommand module keeps heavy imports (torch, faiss) inside its commands, so `xmodal --help`
answers at once.
"""

import sys

import typer

from training.errors import XModalError

xmodal = typer.Typer(
    help="xmodal: cross-modal retrieval (text <-> image/video), captioning and VQA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from app.demo import cli as demo_cli
    from app.serve import cli as serve_cli
    from index.cli import cli as index_cli
    from training.data.cli import cli as data_cli
    from training.eval_cli import cli as eval_cli
    from training.model_cli import cli as model_cli
    from training.train import cli as train_cli

    xmodal.add_typer(data_cli, name="data", help="Prepare, import and list corpora.")
    xmodal.add_typer(train_cli, name="train", help="Train a dual encoder (and heads).")
    xmodal.add_typer(eval_cli, name="eval", help="Evaluate a model: retrieval, zero-shot, VQA, captions.")
    xmodal.add_typer(model_cli, name="model", help="Show or import a model reference.")
    xmodal.add_typer(index_cli, name="index", help="Build and update FAISS indexes.")
    xmodal.add_typer(serve_cli, name="serve", help="Serve the REST API and the web page.")
    xmodal.add_typer(demo_cli, name="demo", help="Prepare corpora, train, index and serve the default.")


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line and exit 2, never a traceback."""
    try:
        rc = xmodal(args=argv, prog_name="xmodal", standalone_mode=False)
    except XModalError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        # typer >= 0.29 raises its own vendored copy of click's exceptions (typer.TyperException)
        if isinstance(e, click.ClickException | typer.TyperException) and hasattr(e, "show"):
            e.show()
            sys.exit(e.exit_code)
        raise
    if isinstance(rc, int) and rc:
        sys.exit(rc)
