"""Index versions on disk and their atomic publication.

    <root>/<name>/v0001/ index.faiss  meta.sqlite  vectors.npy  manifest.json
    <root>/<name>/CURRENT               "v0001": the published version

A version is written completely in a hidden temp dir, renamed into place, and only then is CURRENT
replaced (temp file + rename), so readers never see a half-written index. A temp dir left by a killed
writer is removed by the next write once it is a day old. `vectors.npy` keeps the
embeddings (row i = FAISS id i) so `add`/`remove` build the next version without re-embedding.
"""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from index.build import build_faiss
from index.store import Row, write_store
from training.errors import XModalError
from training.home import indexes_dir

FILES = ("index.faiss", "meta.sqlite", "vectors.npy", "manifest.json")
STALE_TMP_S = 24 * 3600  # a temp dir this old was left by a killed writer (no build runs a day)


def indexes_root(root: Path | None = None) -> Path:
    return Path(root) if root is not None else indexes_dir()


def versions(name: str, root: Path | None = None) -> list[str]:
    d = indexes_root(root) / name
    return sorted(p.name for p in d.glob("v[0-9]*") if (p / "manifest.json").is_file()) if d.is_dir() else []


def current_version(name: str, root: Path | None = None) -> str | None:
    p = indexes_root(root) / name / "CURRENT"
    return p.read_text().strip() if p.is_file() else None


def set_current(name: str, version: str, root: Path | None = None) -> None:
    """Points CURRENT at `version` atomically (readers see the old or the new name, never neither)."""
    d = indexes_root(root) / name
    if not (d / version / "manifest.json").is_file():
        raise XModalError(
            f"index {name!r} has no version {version!r}; versions: {', '.join(versions(name, root))}"
        )
    tmp = d / f".CURRENT.{uuid.uuid4().hex}"
    tmp.write_text(version + "\n")
    os.replace(tmp, d / "CURRENT")


def write_version(
    name: str,
    vectors: np.ndarray,
    rows: list[Row],
    manifest: dict,
    factory: str = "auto",
    root: Path | None = None,
    publish: bool = True,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Builds the FAISS index over `vectors` (N, D), writes a new version and (by default) publishes it.

    `manifest` supplies model_fingerprint, corpus and anything else to record; count, dim, factory,
    search params and created are filled in here; `extra_files` (name -> text, e.g. the job report)
    are written into the version too. Returns the version directory."""
    if len(vectors) != len(rows):
        raise ValueError(f"{len(vectors)} vectors but {len(rows)} rows")
    if len(rows) == 0:
        raise XModalError(f"index {name!r}: nothing to index (no readable items)")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    d = indexes_root(root) / name
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob(".tmp-*"):
        if time.time() - stale.stat().st_mtime > STALE_TMP_S:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = d / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        import faiss

        t0 = time.perf_counter()
        index, params, resolved = build_faiss(vectors, factory)
        faiss.write_index(index, str(tmp / "index.faiss"))
        build_s = time.perf_counter() - t0
        write_store(tmp / "meta.sqlite", rows)
        np.save(tmp / "vectors.npy", vectors)
        full = {
            **manifest,
            "name": name,
            "factory": resolved,
            "search_params": params,
            "count": len({r.item_id for r in rows}),
            "vectors": len(rows),
            "dim": int(vectors.shape[1]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "faiss_build_s": round(build_s, 3),
        }
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2))
        version = _rename_to_next_version(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if publish:
        set_current(name, version, root)
    return d / version


def _rename_to_next_version(tmp: Path, d: Path) -> str:
    """Claims the next free vNNNN by rename (fails if another writer took it; then tries the next)."""
    while True:
        existing = [int(p.name[1:]) for p in d.glob("v[0-9]*") if p.name[1:].isdigit()]
        version = f"v{max(existing, default=0) + 1:04d}"
        try:
            os.rename(tmp, d / version)
            return version
        except OSError:
            if not (d / version).exists():
                raise
