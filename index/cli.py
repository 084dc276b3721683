"""`xmodal index`: build, add to, remove from, list and switch versions of FAISS indexes.

    xmodal index build --model var/models/m --corpus photos,videos --name media
    xmodal index add --model var/models/m --dir new_photos/ --name media
    xmodal index remove --name media --ids photos/cat,photos/dog   (or --where split=test)
    xmodal index list
    xmodal index use --name media --version v0001

Launch `build` under `torchrun --nproc_per_node=N -m index.cli build ...` to shard the embedding.
torch and faiss are imported inside the commands so `xmodal --help` stays fast.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from training.cli_util import run
from training.errors import XModalError

cli = typer.Typer(
    no_args_is_help=True, help="Build and update FAISS indexes.", pretty_exceptions_enable=False
)

Name = Annotated[str, typer.Option("--name", help="Index name (a folder under XMODAL_HOME/indexes).")]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        help="A model reference: saved model dir or id, openclip:ARCH@TAG|FILE, hf-hub:ORG/REPO, "
        "local-dir:PATH, an open_clip snapshot or transformers CLIP/SigLIP dir.",
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")]
Corpus = Annotated[str | None, typer.Option("--corpus", help="Prepared corpus name(s), comma-separated.")]
Manifest = Annotated[Path | None, typer.Option("--manifest", help="A JSONL corpus manifest.")]
Dir = Annotated[Path | None, typer.Option("--dir", help="A folder of images/videos (captions from .txt).")]
Shards = Annotated[str | None, typer.Option("--shards", help="Webdataset tars, e.g. 'x-{000..009}.tar'.")]
Factory = Annotated[
    str, typer.Option("--factory", help='"auto", or a FAISS factory string: "Flat", "HNSW32", ...')
]
BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size", min=1, max=4096,
        help="Items per forward pass [default: XMODAL_INDEX_BATCH_SIZE__CPU/__CUDA, 64/256, by device].",
    ),
]  # fmt: skip
Workers = Annotated[int, typer.Option("--workers", min=0, max=64, help="Decode processes (0: inline).")]
SegmentSeconds = Annotated[
    float, typer.Option("--segment-seconds", min=0.1, help="Video segment length: one vector per segment.")
]
FramesPerSegment = Annotated[int, typer.Option("--frames-per-segment", min=1, max=64)]
VideoFrames = Annotated[
    int, typer.Option("--video-frames", min=1, max=256, help="Frames for the whole-video vector.")
]
MaxVideoSeconds = Annotated[
    float, typer.Option("--max-video-seconds", min=1.0, help="Index at most this much of each video.")
]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def _model(ref: str, device: str):
    """The model any reference names (training/factory.py), on `device`; its fingerprint is what the
    index records. A registry name has no fixed weights, so it cannot embed an index."""
    from training.devices import pick_device
    from training.factory import load_model

    model = load_model(ref, device=pick_device(device))
    if model.fingerprint is None:
        raise XModalError(
            f"--model {ref}: a registry name has fresh random weights; name a saved or pretrained model"
        )
    return model


def _batch_size(given: int | None, device) -> int:
    """--batch-size, else XMODAL_INDEX_BATCH_SIZE's size for the model's device (app/config.py)."""
    if given is not None:
        return given
    from pydantic import ValidationError

    from app.config import Settings

    try:
        return Settings().index_batch_size.for_device(device)
    except ValidationError as e:
        raise XModalError(f"bad XMODAL_* setting: {e}") from None


def _job(name: str, model, sources: dict, cfg, progress: bool, base=None) -> dict | None:
    """Reads the one source given in `sources` (manifest/corpus/directory/shards) and runs the job."""
    from index.publish import indexes_root
    from index.readers import read_sources
    from index.runner import run_job

    if not name or "/" in name or name.startswith("."):
        raise XModalError(f"--name {name!r}: use a plain folder name")
    t0 = time.perf_counter()
    records, desc = read_sources(**sources, cache=indexes_root() / name / "media")
    report = run_job(
        name, model, records, desc, cfg, base=base, progress=progress, read_s=time.perf_counter() - t0
    )
    if report is not None:
        _print_report(report)
    return report


def _print_report(report: dict) -> None:
    typer.echo(
        f"index {report['index']} {report['version']}: {report['count']} items, {report['vectors']} vectors, "
        f"factory {report['factory']}; embedded {report['new_items']} new at {report['items_per_s']} items/s "
        f"(resumed {report['resumed_items']}, already indexed {report['already_indexed']}), "
        f"skipped {report['skipped']}"
    )
    typer.echo("stage timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings"].items()))
    for f in report["failures"][:20]:
        typer.echo(f"  skipped {f['item_id']}: {f['reason']}", err=True)
    if report["skipped"] > 20:
        typer.echo(f"  ... {report['skipped'] - 20} more in report.json", err=True)


@cli.command()
def build(
    name: Name,
    model: Model,
    corpus: Corpus = None,
    manifest: Manifest = None,
    dir: Dir = None,
    shards: Shards = None,
    factory: Factory = "auto",
    batch_size: BatchSize = None,
    workers: Workers = min(4, os.cpu_count() or 1),
    segment_seconds: SegmentSeconds = 5.0,
    frames_per_segment: FramesPerSegment = 4,
    video_frames: VideoFrames = 8,
    max_video_seconds: MaxVideoSeconds = 3600.0,
    progress: Progress = True,
    device: Device = "auto",
) -> None:
    """Embed a corpus and publish a new index version (resumes an interrupted run of the same job)."""
    from index.runner import JobConfig
    from training.video import VideoConfig

    video = VideoConfig(segment_seconds, frames_per_segment, video_frames, max_seconds=max_video_seconds)
    m = _model(model, device)
    cfg = JobConfig(_batch_size(batch_size, m.device), workers, factory=factory, video=video)
    sources = {"manifest": manifest, "corpus": corpus, "directory": dir, "shards": shards}
    _job(name, m, sources, cfg, progress)


@cli.command()
def add(
    name: Name,
    model: Model,
    corpus: Corpus = None,
    manifest: Manifest = None,
    dir: Dir = None,
    shards: Shards = None,
    batch_size: BatchSize = None,
    workers: Workers = min(4, os.cpu_count() or 1),
    progress: Progress = True,
    device: Device = "auto",
) -> None:
    """Embed only the new items and publish a version with old + new (existing vectors reused)."""
    from index.runner import JobConfig, load_base
    from training.video import VideoConfig

    base = load_base(name)
    m = _model(model, device)
    cfg = JobConfig(
        _batch_size(batch_size, m.device), workers, factory=base.manifest.get("factory_requested", "auto")
    )
    cfg.video = VideoConfig(**base.manifest["video"]) if "video" in base.manifest else cfg.video
    sources = {"manifest": manifest, "corpus": corpus, "directory": dir, "shards": shards}
    _job(name, m, sources, cfg, progress, base)


def _parse_where(pairs: list[str]) -> dict:
    where = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise XModalError(f"--where {pair!r}: expected key=value, e.g. --where split=test")
        try:  # numbers and booleans as JSON; anything else is a string
            where[key] = json.loads(value)
        except json.JSONDecodeError:
            where[key] = value
    return where


@cli.command()
def remove(
    name: Name,
    ids: Annotated[str | None, typer.Option("--ids", help="Comma-separated item ids.")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="key=value on item metadata; repeatable.")
    ] = None,
) -> None:
    """Publish a version without the chosen items (no re-embedding)."""
    from index.runner import remove_items

    id_list = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
    report = remove_items(name, id_list, _parse_where(where or []))
    typer.echo(f"index {name} {report['version']}: removed {report['removed']} items, {report['count']} left")


@cli.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Published indexes with their current version, size and model fingerprint."""
    from index.search import list_indexes

    rows = list_indexes()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['name']}\t{r['current']}\t{r['count']} items\t{r['factory']}\tmodel {r['fingerprint']}"
        )
    if not rows:
        typer.echo("no indexes yet; build one with `xmodal index build`")


@cli.command()
def use(name: Name, version: Annotated[str, typer.Option("--version", help="e.g. v0001")]) -> None:
    """Switch CURRENT to another existing version (rollback)."""
    from index.publish import set_current

    set_current(name, version, forward_only=False)
    typer.echo(f"index {name}: CURRENT -> {version}")


def main(argv: list[str] | None = None):
    """Entry point for tests and torchrun (`python -m index.cli build ...`)."""
    return run(cli, argv)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except XModalError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
