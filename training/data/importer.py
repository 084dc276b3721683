"""`xmodal data import DIR`: a manifest for a user's folder of images and videos.

Captions come from a CSV (header `path,caption`) or JSONL (`{"path": ..., "caption": ...}` or
`"captions": [...]`) file, one or more rows per media file, paths relative to DIR; files it does not
list fall back to sidecar files (`cat.jpg` + `cat.txt`, one caption per non-empty line).

Media are referenced in place (absolute paths), not copied. Unreadable images and videos are skipped
and reported by path; a bad captions line raises InputFileError naming the file and line.
"""

import csv
import json
import re
import time
from collections import Counter
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from training.data.corpora import corpus_dir, known_corpora
from training.data.corpora.builder import BuildReport, write_info
from training.data.manifest import MANIFEST, Item, split_for, write_manifest
from training.errors import InputFileError, XModalError
from training.media_kinds import media_kind


def read_captions(path: Path, root: Path) -> dict[str, list[str]]:
    """Captions by media path (relative to `root`) from a .csv or .jsonl file; bad lines: InputFileError."""
    if not path.is_file():
        raise InputFileError(path, None, "captions file not found")
    suffix = path.suffix.lower()
    rows: list[tuple[int, str, list[str]]] = []  # (line, media path, captions)
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
                raise InputFileError(path, 1, "expected a header row with the columns path,caption")
            for row in reader:
                line = reader.line_num
                if None in row or row.get("caption") is None:
                    raise InputFileError(path, line, f"expected {len(reader.fieldnames)} columns")
                rows.append((line, (row["path"] or "").strip(), [row["caption"].strip()]))
    elif suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            for line, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    raise InputFileError(path, line, f"invalid JSON: {e.msg}") from None
                if not isinstance(obj, dict):
                    raise InputFileError(path, line, "expected an object with path and caption")
                caps = obj.get("captions", [obj["caption"]] if "caption" in obj else None)
                if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                    raise InputFileError(
                        path, line, "expected caption (a string) or captions (a list of strings)"
                    )
                if not isinstance(obj.get("path"), str):
                    raise InputFileError(path, line, "expected path (a string)")
                rows.append((line, obj["path"].strip(), [c.strip() for c in caps]))
    else:
        raise InputFileError(path, None, "captions file must be .csv or .jsonl")

    out: dict[str, list[str]] = {}
    for line, media, caps in rows:
        if not media:
            raise InputFileError(path, line, "path is empty")
        if not all(caps):
            raise InputFileError(path, line, "caption is empty")
        full = Path(media) if Path(media).is_absolute() else root / media
        if not full.is_file():
            raise InputFileError(path, line, f"no such file {media!r} under {root}")
        rel = full.resolve().relative_to(root.resolve()).as_posix()
        known = out.setdefault(rel, [])
        for c in caps:
            if c not in known:
                known.append(c)
    return out


def check_media(path: Path, kind: str) -> str | None:
    """None when the file decodes, else why not."""
    try:
        if kind == "image":
            with Image.open(path) as img:
                img.verify()  # reads the whole file; catches truncated and non-image data
        else:
            import av

            with av.open(str(path)) as container:
                if not container.streams.video:
                    return "no video stream"
    except Exception as e:  # PIL and PyAV raise many types for bad files
        return f"{type(e).__name__}: {e}"
    return None


def corpus_name(root: Path, name: str | None) -> str:
    """--name, or the folder's name, as a safe corpus name; built-in names are refused."""
    name = name or re.sub(r"[^a-z0-9_-]+", "-", root.resolve().name.lower()).strip("-") or "imported"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise XModalError(f"corpus name {name!r}: use letters, digits, '.', '_' and '-'")
    if name in known_corpora():
        raise XModalError(f"{name!r} is a built-in corpus; choose another --name")
    return name


def import_folder(
    root: Path, name: str | None = None, captions: Path | None = None
) -> tuple[BuildReport, list[str]]:
    """Writes XMODAL_HOME/corpora/<name>/manifest.jsonl for the media under `root`.

    Returns the report and the list of skipped files with the reason.
    """
    start = time.perf_counter()
    if not root.is_dir():
        raise XModalError(f"{root} is not a folder")
    name = corpus_name(root, name)
    table = read_captions(captions, root) if captions is not None else None
    files = sorted(p for p in root.rglob("*") if p.is_file() and media_kind(p))
    if not files:
        raise XModalError(f"no images or videos under {root}")
    items, skipped = [], []
    for path in tqdm(files, desc=f"import {name}", unit="file", dynamic_ncols=True):
        kind = media_kind(path)
        rel = path.relative_to(root).as_posix()
        problem = check_media(path, kind)
        if problem:
            skipped.append(f"{path}: {problem}")
            continue
        sidecar = path.with_suffix(".txt")
        caps = (table or {}).get(rel) or (
            sidecar.read_text(encoding="utf-8").splitlines() if sidecar.is_file() else []
        )
        item_id = f"{name}/{rel}"
        items.append(
            Item(
                id=item_id,
                path=str(path.resolve()),
                media=kind,
                captions=[c.strip() for c in caps if c.strip()],
                split=split_for(item_id),
                meta={"source": rel},
            )
        )
    out = corpus_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / MANIFEST, items)
    report = BuildReport(
        name=name,
        counts=dict(Counter(it.split for it in items)),
        skipped={"unreadable": len(skipped)} if skipped else {},
        qa=0,
        seconds=round(time.perf_counter() - start, 2),
        examples={"unreadable": skipped[:5]} if skipped else {},
    )
    write_info(out, report)
    return report, skipped
