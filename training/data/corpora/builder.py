"""A resumable, parallel corpus build: source keys -> (media file + Item) or a counted skip -> manifest.

Every finished key is appended to a journal (`progress.jsonl`) after its media file is in place, so a
killed run resumes where it stopped: finished keys are not redone, and the manifest is written once, at
the end, from the journal (no duplicates). Media files are written atomically (temp file, then rename).
"""

import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from training.atomic import atomic_path, write_atomic
from training.data.manifest import MANIFEST, Item, write_manifest

JOURNAL = "progress.jsonl"
INFO = "info.json"
MEDIA = "media"


@dataclass
class Skip:
    """A source item left out on purpose; `reason` is the counted category, `detail` says which and why."""

    reason: str  # e.g. "untitled", "unrenderable"
    detail: str = ""


@dataclass
class BuildReport:
    name: str
    counts: dict[str, int]  # items per split
    skipped: dict[str, int]  # skipped source items per reason
    qa: int  # QA pairs over all items
    seconds: float  # wall time of this run (a resumed run counts only its own work)
    limit: int | None = None  # the build covered only the first `limit` source keys
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few skip details per reason
    sources: int = 0  # source keys the build covered (items + skipped)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        splits = ", ".join(f"{s} {self.counts.get(s, 0):,}" for s in ("train", "val", "test"))
        line = f"{self.name}: {self.total:,} items ({splits})"
        if self.qa:
            line += f", {self.qa:,} QA pairs"
        if self.skipped:
            line += "; skipped " + ", ".join(f"{n:,} {r}" for r, n in sorted(self.skipped.items()))
        return line + f"; {self.seconds:.1f} s"


# Make(key, out_dir) -> Item | Skip. It must be a module-level function (it is sent to worker processes)
# and write its media under out_dir with save_image or training.atomic; Item.path is relative to out_dir.
Make = Callable[[str, Path], "Item | Skip"]


def save_image(img: Image.Image, path: Path, **params) -> None:
    """Saves a PIL image atomically; the format follows the suffix; params go to PIL (e.g. quality=95)."""
    with atomic_path(path) as tmp:
        img.save(tmp, format=Image.registered_extensions()[path.suffix.lower()], **params)


def _read_journal(path: Path, out_dir: Path) -> dict[str, dict]:
    """Finished keys -> their journal entry. A torn last line (killed mid-write) and entries whose media
    has since gone are dropped; the journal is rewritten clean so that appending can continue."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "item" in entry and not (out_dir / entry["item"]["path"]).is_file():
            continue
        done[entry["key"]] = entry
    if len(done) != len(lines) or not text.endswith("\n"):
        write_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in done.values()))
    return done


def _newer(out_dir: Path) -> bool:
    """The manifest and info.json were written after the journal's last entry."""
    if not (out_dir / JOURNAL).is_file():
        return False
    journal = (out_dir / JOURNAL).stat().st_mtime
    return all((out_dir / f).is_file() and (out_dir / f).stat().st_mtime >= journal for f in (MANIFEST, INFO))


def _run_one(make: Make, out_dir: Path, key: str) -> tuple[str, "Item | Skip"]:
    return key, make(key, out_dir)


def build(
    name: str,
    out_dir: Path,
    keys: Sequence[str],
    make: Make,
    *,
    limit: int | None = None,
    workers: int = 1,
    finalize: Callable[[list[Item]], list[Item]] | None = None,
) -> BuildReport:
    """Builds `out_dir/manifest.jsonl` from the source `keys` (unique, in a stable order).

    limit: only the first `limit` keys. workers: processes for `make` (1 = in this process).
    finalize: a last pass over all items (e.g. assigning splits by group) before the manifest is written.
    """
    start = time.perf_counter()
    if limit is not None and limit >= len(keys):
        limit = None  # the build is complete
    keys = list(keys)[:limit]
    assert len(set(keys)) == len(keys), "source keys must be unique"
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = out_dir / JOURNAL
    done = _read_journal(journal, out_dir)
    todo = [k for k in keys if k not in done]
    previous = read_info(out_dir)
    if not todo and previous and (previous.sources, previous.limit) == (len(keys), limit) and _newer(out_dir):
        previous.seconds = round(time.perf_counter() - start, 2)
        return previous  # nothing new since the manifest was written
    with (
        journal.open("a", encoding="utf-8") as log,
        tqdm(
            total=len(keys), initial=len(keys) - len(todo), desc=name, unit="item", dynamic_ncols=True
        ) as bar,
    ):
        run = partial(_run_one, make, out_dir)
        if workers > 1 and len(todo) > 1:
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap_unordered(run, todo, chunksize=max(1, min(64, len(todo) // (workers * 8))))
        else:
            pool, results = None, map(run, todo)
        try:
            for key, res in results:
                entry = {"key": key}
                if isinstance(res, Skip):
                    entry["skip"] = asdict(res)
                else:
                    entry["item"] = res.model_dump()
                done[key] = entry
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                log.flush()
                bar.update()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()

    entries = [done[k] for k in keys]
    items = [Item.model_validate(e["item"]) for e in entries if "item" in e]
    if finalize is not None:
        items = finalize(items)
    items.sort(key=lambda it: it.id)
    write_manifest(out_dir / MANIFEST, items)

    skips = [e["skip"] for e in entries if "skip" in e]
    examples: dict[str, list[str]] = {}
    for s in skips:
        ex = examples.setdefault(s["reason"], [])
        if len(ex) < 5:
            ex.append(s["detail"])
    report = BuildReport(
        name=name,
        counts=dict(Counter(it.split for it in items)),
        skipped=dict(Counter(s["reason"] for s in skips)),
        qa=sum(len(it.qa) for it in items),
        seconds=round(time.perf_counter() - start, 2),
        limit=limit,
        examples=examples,
        sources=len(keys),
    )
    write_info(out_dir, report)
    return report


def write_info(out_dir: Path, report: BuildReport) -> None:
    """info.json beside the manifest: the counts `xmodal data list` shows without reading the manifest."""
    write_atomic(out_dir / INFO, json.dumps(asdict(report), indent=1) + "\n")


def read_info(out_dir: Path) -> BuildReport | None:
    path = out_dir / INFO
    if not path.is_file():
        return None
    return BuildReport(**json.loads(path.read_text(encoding="utf-8")))
