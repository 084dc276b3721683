"""Readers: every source an index can be built from, turned into one list of `Record`s.

    --manifest FILE         a JSONL manifest (training/data/manifest.py)
    --corpus NAME[,NAME]    prepared corpora (XMODAL_HOME/corpora/<name>/manifest.jsonl); ids get "<name>/"
    --dir DIR               image and video files under DIR; caption from a sibling .txt; id = relative path
    --shards 'x-{000..009}.tar'  webdataset-style tars (key.jpg + key.txt/.json); members are extracted
                                 once into a media cache so the service can serve them by path

Tars may be untrusted: a member with an absolute or `..` name, a link or a device is refused (never
extracted) and reported by the job as a skipped item naming the tar and member.

Records carry absolute paths; decoding happens later, in DataLoader workers (index/embed.py).
"""

import itertools
import json
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from training.atomic import atomic_path
from training.errors import InputFileError, XModalError
from training.media_kinds import media_kind


@dataclass
class Record:
    item_id: str
    path: str  # absolute media path
    media: str  # "image" | "video"
    captions: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    refused: str | None = None  # why the reader refused this item (the job reports it as skipped)


def read_manifest_records(path: Path) -> list[Record]:
    """Records of a manifest; bad lines raise InputFileError naming file and line."""
    from training.data.manifest import media_path, read_manifest

    return [
        Record(
            it.id,
            str(media_path(path, it).resolve()),
            it.media,
            list(it.captions),
            {**it.meta, "split": it.split},
        )
        for it in read_manifest(path)
    ]


def read_corpus_records(names: str) -> list[Record]:
    """Records of one or more prepared corpora. Prepared ids start with "<corpus>/" already; one that
    does not gets that prefix when several corpora share the index, so ids stay unique."""
    from training.data.corpora import corpus_manifest

    parts = [n.strip() for n in names.split(",") if n.strip()]
    if not parts:
        raise XModalError("--corpus: give one or more corpus names, e.g. --corpus photos,videos")
    records = []
    for name in parts:
        for r in read_manifest_records(corpus_manifest(name)):
            if len(parts) > 1 and not r.item_id.startswith(f"{name}/"):
                r.item_id = f"{name}/{r.item_id}"
            r.meta.setdefault("corpus", name)
            records.append(r)
    return records


def read_dir_records(root: Path) -> list[Record]:
    """Every image/video file under `root` (sorted); `foo.txt` beside `foo.jpg` gives its caption."""
    if not root.is_dir():
        raise XModalError(f"--dir {root}: not a directory")
    records = []
    for p in sorted(root.rglob("*")):
        kind = media_kind(p)
        if kind is None or not p.is_file():
            continue
        txt = p.with_suffix(".txt")
        captions = (
            [ln.strip() for ln in txt.read_text(errors="replace").splitlines() if ln.strip()]
            if txt.is_file()
            else []
        )
        rel = p.relative_to(root).as_posix()
        records.append(Record(rel, str(p.resolve()), kind, captions, {"folder": str(Path(rel).parent)}))
    if not records:
        raise XModalError(f"--dir {root}: no image or video files found")
    return records


def expand_braces(pattern: str) -> list[str]:
    """'x-{000..002}.tar' -> ['x-000.tar', 'x-001.tar', 'x-002.tar'] (webdataset's brace ranges)."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo) if lo.startswith("0") else 0
    head, tail = pattern[: m.start()], pattern[m.end() :]
    return list(
        itertools.chain.from_iterable(
            expand_braces(f"{head}{str(i).zfill(width)}{tail}") for i in range(int(lo), int(hi) + 1)
        )
    )


def _unsafe(m: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted, or None when it is a plain file with a relative name."""
    if m.issym() or m.islnk():
        return f"is a link (to {m.linkname!r})"
    if not m.isfile():
        return None if m.isdir() else "is a device or special file"
    name = PurePosixPath(m.name)
    if name.is_absolute() or m.name.startswith("\\") or re.match(r"^[A-Za-z]:", m.name):
        return "has an absolute name"
    if ".." in name.parts:
        return "has a '..' in its name"
    return None


def read_shard_records(pattern: str, cache: Path) -> list[Record]:
    """Samples from webdataset-style tars: members sharing a key (name up to the first dot) form one
    sample; the media member is extracted under `cache/<shard>/`; .txt gives captions, .json meta
    (its "caption"/"captions" fields become captions). Unsafe members come back as refused records."""
    records = []
    for shard in map(Path, expand_braces(pattern)):
        if not shard.is_file():
            raise XModalError(f"--shards: {shard} not found (pattern {pattern!r})")
        try:
            with tarfile.open(shard) as tar:
                samples: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in tar.getmembers():
                    why = _unsafe(m)
                    if why is not None:
                        reason = f"{shard}: member {m.name!r} {why}; refused"
                        records.append(
                            Record(f"{shard.stem}/{m.name}", f"{shard}:{m.name}", "image", refused=reason)
                        )
                    elif m.isfile():
                        key, _, ext = m.name.partition(".")
                        samples.setdefault(key, {})["." + ext.lower()] = m
                out_dir = (cache / shard.stem).resolve()
                for key, members in samples.items():
                    media = next((e for e in members if media_kind("x" + e)), None)
                    if media is None:
                        continue
                    dest = out_dir / (key + media)
                    assert dest.resolve().is_relative_to(out_dir), dest  # _unsafe refused what escapes
                    if not dest.is_file():
                        with atomic_path(dest) as tmp, tmp.open("wb") as f:
                            shutil.copyfileobj(tar.extractfile(members[media]), f)
                    captions, meta = [], {"shard": shard.name}
                    if ".txt" in members:
                        text = tar.extractfile(members[".txt"]).read().decode("utf-8", "replace")
                        captions = [line.strip() for line in text.splitlines() if line.strip()]
                    if ".json" in members:
                        try:
                            extra = json.loads(tar.extractfile(members[".json"]).read())
                        except (json.JSONDecodeError, UnicodeDecodeError) as e:
                            why = f"{shard}: member {members['.json'].name!r}: invalid JSON ({e}); refused"
                            records.append(
                                Record(f"{shard.stem}/{key}", str(dest), media_kind(dest), refused=why)
                            )
                            continue
                        if isinstance(extra, dict):
                            caps = extra.pop("captions", None) or [extra.pop("caption", None)]
                            captions = captions or [c for c in caps if c]
                            meta.update(extra)
                    records.append(Record(f"{shard.stem}/{key}", str(dest), media_kind(dest), captions, meta))
        except tarfile.TarError as e:
            raise InputFileError(shard, None, f"not a readable tar shard ({e})") from None
    return records


def read_sources(
    manifest: Path | None = None,
    corpus: str | None = None,
    directory: Path | None = None,
    shards: str | None = None,
    cache: Path | None = None,
) -> tuple[list[Record], list[str]]:
    """Records from exactly one source option, and a description of it for manifest.json.
    Duplicate ids raise XModalError (an index holds each item once)."""
    given = [
        (k, v)
        for k, v in (
            ("--manifest", manifest),
            ("--corpus", corpus),
            ("--dir", directory),
            ("--shards", shards),
        )
        if v
    ]
    if len(given) != 1:
        raise XModalError(
            "give exactly one of --manifest, --corpus, --dir, --shards"
            + (f" (got {', '.join(k for k, _ in given)})" if given else "")
        )
    if manifest:
        records, desc = read_manifest_records(Path(manifest)), [f"manifest:{Path(manifest).resolve()}"]
    elif corpus:
        records, desc = (
            read_corpus_records(corpus),
            [f"corpus:{n.strip()}" for n in corpus.split(",") if n.strip()],
        )
    elif directory:
        records, desc = read_dir_records(Path(directory)), [f"dir:{Path(directory).resolve()}"]
    else:
        if cache is None:
            raise ValueError("shards need a media cache dir")
        records, desc = read_shard_records(shards, cache), [f"shards:{shards}"]
    seen: set[str] = set()
    for r in records:
        if r.item_id in seen:
            raise XModalError(f"duplicate item id {r.item_id!r} in {desc[0]}")
        seen.add(r.item_id)
    return records, desc
