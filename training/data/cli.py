"""`xmodal data`: prepare the built-in corpora, import a folder, list what is prepared."""

import os
from pathlib import Path

import typer

from training.cli_util import run
from training.data.corpora import corpus_dir, corpus_module, known_corpora
from training.data.corpora.builder import read_info
from training.data.manifest import MANIFEST, read_manifest
from training.errors import XModalError
from training.home import corpora_dir

cli = typer.Typer(no_args_is_help=True, help="Prepare, import and list corpora.")


@cli.command()
def prepare(
    names: list[str] = typer.Argument(..., help=f"corpora to build, or 'all': {', '.join(known_corpora())}"),
    limit: int | None = typer.Option(None, min=1, help="only the first N source items of each corpus"),
    workers: int = typer.Option(os.cpu_count() or 1, min=1, help="processes for rendering and writing"),
) -> None:
    """Build corpora under XMODAL_HOME/corpora/NAME (manifest.jsonl + media/); re-running resumes."""
    wanted = known_corpora() if "all" in names else list(dict.fromkeys(names))
    modules = {name: corpus_module(name) for name in wanted}  # unknown names fail before any work
    reports, missing = [], []
    for name, module in modules.items():
        problem = module.available()
        # openclipart and fashion-mnist need their Debian package; photos and videos build what exists.
        if problem and name in ("openclipart", "fashion-mnist"):
            if len(wanted) == 1:
                raise XModalError(f"cannot prepare {name}: {problem}")
            missing.append(f"{name}: {problem}")
            continue
        if problem:
            typer.echo(f"note: {problem}", err=True)
        reports.append(module.prepare(corpus_dir(name), limit=limit, workers=workers))
    typer.echo()
    for r in reports:
        typer.echo(r.summary())
        for reason, examples in sorted(r.examples.items()):
            typer.echo(f"  skipped ({reason}), e.g. {examples[0]}")
    for line in missing:
        typer.echo(f"NOT PREPARED {line}")


@cli.command("list")
def list_corpora() -> None:
    """Each corpus (built-in and imported) with its counts per split and whether it is prepared."""
    root = corpora_dir()
    imported = sorted({p.parent.name for p in root.glob(f"*/{MANIFEST}")} - set(known_corpora()))
    typer.echo(f"{'corpus':<16} {'status':<14} {'train':>8} {'val':>7} {'test':>7} {'QA':>8}  skipped")
    for name in known_corpora() + imported:
        out = corpus_dir(name)
        if not (out / MANIFEST).is_file():
            status = "partial" if out.is_dir() else "not prepared"
            typer.echo(f"{name:<16} {status:<14}")
            continue
        info = read_info(out)
        if info is None:  # a manifest written by hand: count it
            items = list(read_manifest(out / MANIFEST))
            counts = {s: sum(it.split == s for it in items) for s in ("train", "val", "test")}
            qa, skipped, limited = sum(len(it.qa) for it in items), {}, None
        else:
            counts, qa, skipped, limited = info.counts, info.qa, info.skipped, info.limit
        status = f"limit {limited}" if limited else "prepared" if name in known_corpora() else "imported"
        skips = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
        typer.echo(
            f"{name:<16} {status:<14} {counts.get('train', 0):>8,} {counts.get('val', 0):>7,} "
            f"{counts.get('test', 0):>7,} {qa:>8,}  {skips}"
        )


@cli.command("import")
def import_(
    folder: Path = typer.Argument(..., help="a folder of images and/or videos (searched recursively)"),
    name: str | None = typer.Option(None, help="corpus name (default: the folder's name)"),
    captions: Path | None = typer.Option(None, help="a .csv (path,caption) or .jsonl file of captions"),
) -> None:
    """Make a corpus of a folder: captions from x.txt beside x.jpg, or from --captions."""
    from training.data.importer import import_folder

    report, skipped = import_folder(folder, name, captions)
    for line in skipped:
        typer.echo(f"skipped unreadable: {line}", err=True)
    typer.echo(report.summary())
    typer.echo(f"manifest: {corpus_dir(report.name) / MANIFEST}")


def main(argv: list[str] | None = None):
    """Runs `xmodal data` on argv (tests call this in-process)."""
    return run(cli, argv)
