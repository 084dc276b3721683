"""The one corpus format: a JSONL manifest, one item per line, media paths relative to the manifest.

{"id": "openclipart/animals/cow", "path": "media/cow.png", "media": "image",
 "captions": ["cartoon cow"], "split": "train", "meta": {"keywords": ["cow"]},
 "qa": [{"question": "what animal is this?", "answer": "cow"}]}
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.atomic import atomic_path
from training.errors import InputFileError

Split = Literal["train", "val", "test"]
MANIFEST = "manifest.jsonl"


class QA(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    type: str | None = None  # question family, e.g. "color" or "shape", for per-type accuracy


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    path: str = Field(min_length=1)  # relative to the manifest's folder, or absolute
    media: Literal["image", "video"] = "image"
    captions: list[str] = Field(default_factory=list)
    split: Split = "train"
    meta: dict = Field(default_factory=dict)
    qa: list[QA] = Field(default_factory=list)


def split_for(key: str, val: float = 0.05, test: float = 0.1) -> Split:
    """A deterministic split from a stable key (an id or a group name): same key, same split, every run."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


def read_manifest(path: str | Path) -> Iterator[Item]:
    """Yields validated items; a bad line raises InputFileError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, None, "manifest not found")
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = Item.model_validate_json(line)
            except ValidationError as e:
                first = e.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "line"
                raise InputFileError(path, n, f"{field}: {first['msg']}") from None
            if item.id in seen:
                raise InputFileError(path, n, f"duplicate id {item.id!r}")
            seen.add(item.id)
            yield item


def load_manifest(path: str | Path, splits: Iterable[str] | None = None) -> list[Item]:
    wanted = set(splits) if splits is not None else None
    return [it for it in read_manifest(path) if wanted is None or it.split in wanted]


def write_manifest(path: str | Path, items: Iterable[Item]) -> int:
    """Writes atomically and durably (training.atomic), so a killed run never leaves half a manifest."""
    path = Path(path)
    n = 0
    with atomic_path(path, mkdir=False) as tmp, tmp.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it.model_dump(exclude_defaults=False), ensure_ascii=False) + "\n")
            n += 1
    return n


def media_path(manifest: str | Path, item: Item) -> Path:
    p = Path(item.path)
    return p if p.is_absolute() else Path(manifest).parent / p
