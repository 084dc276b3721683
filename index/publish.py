"""Index versions on disk, their durable publication, and the one writer lock per index.

    <root>/<name>/v0001/ index.faiss  meta.sqlite  vectors.npy  manifest.json
    <root>/<name>/CURRENT               "v0001": the published version
    <root>/<name>/.writer.lock          flock'ed by the one process writing this index; names it

A version is written completely in a hidden temp dir, every file and the dir are fsynced, the dir is
renamed into place (and the parent fsynced), and only then is CURRENT replaced (training.atomic), so
neither a reader nor a power cut ever sees a half-written version. Every writer holds the index's
writer lock (`writer_lock`) from choosing a version number to moving CURRENT, so versions are numbered
in publication order and CURRENT only moves forward (`index use` is the one explicit rollback). The
lock is an flock: the kernel drops it when its holder dies, so a killed writer never leaves a stale
lock, and the temp dirs it left are removed by the next writer. `manifest.json` records each file's
size and sha256, so a truncated or corrupted file is found when the version is opened (`verify_version`).
`vectors.npy` keeps the embeddings (row i = FAISS id i) so `add`/`remove` build the next version
without re-embedding.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from index.build import build_faiss
from index.store import Row, write_store
from training.atomic import publish_dir, write_atomic
from training.errors import BrokenArtifactError, XModalError
from training.home import indexes_dir

FILES = ("index.faiss", "meta.sqlite", "vectors.npy", "manifest.json")
LOCK = ".writer.lock"
LOCK_WAIT_S = 600.0  # a second writer waits this long for the first, then fails naming it
_held: set[Path] = set()  # lock files this process holds (the lock is re-entrant within a process)


class IndexLockedError(XModalError):
    """Another process is writing this index."""


def indexes_root(root: Path | None = None) -> Path:
    return Path(root) if root is not None else indexes_dir()


def versions(name: str, root: Path | None = None) -> list[str]:
    d = indexes_root(root) / name
    return sorted(p.name for p in d.glob("v[0-9]*") if (p / "manifest.json").is_file()) if d.is_dir() else []


def current_version(name: str, root: Path | None = None) -> str | None:
    p = indexes_root(root) / name / "CURRENT"
    return p.read_text().strip() if p.is_file() else None


def _holder(lock_file) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    lock_file.seek(0)
    try:
        info = json.loads(lock_file.read().decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        info = {}
    if not info:
        return "another process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} (started {info.get('started')}: {info.get('command')})"
    )


@contextmanager
def writer_lock(name: str, root: Path | None = None, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Holds index `name`'s writer lock for the block. A second writer waits up to `wait_s` (saying
    whom it waits for), then raises IndexLockedError naming the holder's pid and start time.
    Re-entrant within one process."""
    d = indexes_root(root) / name
    d.mkdir(parents=True, exist_ok=True)
    path = (d / LOCK).resolve()
    if path in _held:
        yield
        return
    with open(path, "a+b", buffering=0) as f:  # unbuffered: a full disk fails the write, not the close
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(f)
            if wait_s <= 0:
                msg = f"index {name!r} is being written by {holder}; retry when it ends"
                raise IndexLockedError(msg) from None
            print(f"index {name!r}: waiting for the writer {holder} ...", file=sys.stderr, flush=True)
            deadline = time.monotonic() + wait_s
            while True:
                time.sleep(0.1)
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise IndexLockedError(
                            f"index {name!r} is still being written by {_holder(f)} after {wait_s:.0f} s; "
                            "retry when it ends"
                        ) from None
        me = {
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv[:4])[:200],
        }
        f.seek(0)
        f.truncate()
        # who holds it, for a waiting writer's message (the flock alone is the lock); on a full disk
        # this fails and the version write that follows says so
        with contextlib.suppress(OSError):
            f.write(json.dumps(me).encode())
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)
            f.seek(0)
            f.truncate()  # closing the file releases the flock


def _number(version: str | None) -> int:
    return int(version[1:]) if version and version[1:].isdigit() else 0


def set_current(name: str, version: str, root: Path | None = None, forward_only: bool = True) -> None:
    """Points CURRENT at `version` atomically and durably (readers see the old or the new name, never
    neither), under the writer lock. `forward_only` refuses a version older than the published one
    (publication); `index use` passes False for an explicit rollback."""
    d = indexes_root(root) / name
    if not (d / version / "manifest.json").is_file():
        raise XModalError(
            f"index {name!r} has no version {version!r}; versions: {', '.join(versions(name, root))}"
        )
    with writer_lock(name, root):
        current = current_version(name, root)
        if forward_only and _number(current) > _number(version):
            raise XModalError(f"index {name!r}: CURRENT is {current}, newer than {version}; not moving back")
        write_atomic(d / "CURRENT", version + "\n")


def _file_record(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def verify_version(vdir: Path) -> dict:
    """The version's manifest, after checking every file it lists against its recorded size and
    sha256; raises BrokenArtifactError naming the first missing, truncated or corrupted file."""
    try:
        manifest = json.loads((vdir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BrokenArtifactError(vdir / "manifest.json", f"unreadable ({e})") from None
    for fname, want in manifest.get("files", {}).items():
        p = vdir / fname
        if not p.is_file():
            raise BrokenArtifactError(p, "missing")
        size = p.stat().st_size
        if size != want["bytes"]:
            raise BrokenArtifactError(p, f"truncated or overwritten: {size} bytes, {want['bytes']} written")
        if _file_record(p)["sha256"] != want["sha256"]:
            raise BrokenArtifactError(p, "corrupted: its sha256 differs from the one recorded at writing")
    return manifest


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
    are written into the version too. Holds the writer lock throughout. A failed write (disk full)
    raises XModalError saying so and leaves the published version as it was. Returns the version dir."""
    if len(vectors) != len(rows):
        raise ValueError(f"{len(vectors)} vectors but {len(rows)} rows")
    if len(rows) == 0:
        raise XModalError(f"index {name!r}: nothing to index (no readable items)")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    d = indexes_root(root) / name
    with writer_lock(name, root):
        for stale in d.glob(".tmp-*"):  # we hold the lock: these were left by killed writers
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
            for fname, text in (extra_files or {}).items():
                (tmp / fname).write_text(text)
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
                "files": {p.name: _file_record(p) for p in sorted(tmp.iterdir())},
            }
            (tmp / "manifest.json").write_text(json.dumps(full, indent=2))
            version = _next_version(d)
            publish_dir(tmp, d / version)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError | RuntimeError | sqlite3.Error):  # disk full, I/O error (faiss: Runtime)
                raise XModalError(_write_failed(name, d, e)) from e
            raise
        if publish:
            set_current(name, version, root)
    return d / version


def _write_failed(name: str, d: Path, e: BaseException) -> str:
    """Why writing a version failed (disk full, I/O error), and that nothing published changed."""
    full = getattr(e, "errno", None) == errno.ENOSPC or "full" in str(e).lower() or "space" in str(e).lower()
    current = current_version(name, d.parent)
    return (
        f"index {name!r}: writing a new version in {d} failed"
        + (" (the disk is full)" if full else "")
        + f": {e}; "
        + (f"the published version {current} is untouched" if current else "nothing was published")
    )


def _next_version(d: Path) -> str:
    """The next vNNNN (the caller holds the writer lock, so no one else numbers)."""
    existing = [int(p.name[1:]) for p in d.glob("v[0-9]*") if p.name[1:].isdigit()]
    return f"v{max(existing, default=0) + 1:04d}"
