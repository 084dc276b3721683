"""Placeholder: this subcommand arrives with its issue."""

import typer

cli = typer.Typer(no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def _not_built() -> None:
    raise typer.Exit(print("not built yet") or 1)
