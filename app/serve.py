"""`xmodal serve`: the REST API (and the web page in app/web) under uvicorn."""

from pathlib import Path

import typer

from training.cli_util import run

cli = typer.Typer(no_args_is_help=False, add_completion=False)


@cli.callback(invoke_without_command=True)
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to bind; 0.0.0.0 exposes the service"),
    port: int = typer.Option(8000, envvar="XMODAL_PORT", help="TCP port (XMODAL_PORT)"),
    model: str | None = typer.Option(None, help="a model reference (default: XMODAL_MODEL, else the newest)"),
    index: list[str] | None = typer.Option(None, help="index to serve (repeatable; default: all published)"),
    default_index: str | None = typer.Option(None, help="index used when a request names none"),
    batching: bool = typer.Option(True, help="micro-batch concurrent requests (--no-batching: batch size 1)"),
    watch: bool | None = typer.Option(None, help="reload an index when its CURRENT changes (XMODAL_WATCH)"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve the API on http://HOST:PORT (docs at /docs, metrics at /metrics)."""
    import uvicorn
    from pydantic import ValidationError

    from app.config import Settings
    from app.main import create_app
    from app.registry import Registry
    from training.errors import XModalError

    overrides = dict(model=model, indexes=index or None, default_index=default_index, watch=watch)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise XModalError(f"bad XMODAL_* setting: {e}") from None
    if not batching:
        settings.batch.enabled = False
    registry = Registry(settings)
    registry.load_initial()  # here, so a missing model or index is one clear line, not a traceback
    app = create_app(settings, registry)
    web = Path(__file__).parent / "web" / "index.html"
    typer.echo(f"xmodal serving on http://{host}:{port}" + (" (web page at /)" if web.is_file() else ""))
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def main(argv: list[str] | None = None):
    """Entry point for tests and `python -m app.serve`."""
    return run(cli, argv)


if __name__ == "__main__":
    main()
