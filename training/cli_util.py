"""Shared by every `xmodal` subcommand module: run a Typer app on an argv list (tests call this)."""

import typer


def run(cli: typer.Typer, argv: list[str] | None):
    """Runs `cli` on argv without sys.exit; XModalError propagates to the caller (tests assert on it)."""
    return cli(args=argv, standalone_mode=False)
