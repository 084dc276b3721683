"""The one way xmodal writes a file that others read: all of it, or none of it, and durably.

    with atomic_path(out / "index.faiss") as tmp:   # for libraries that write by path
        faiss.write_index(index, str(tmp))
    write_atomic(out / "card.json", json.dumps(card))  # bytes or text
    publish_dir(tmp_dir, versions / "v0003")          # a whole directory, written in a temp dir

The data goes to a temp file in the same directory (`.<name>.<pid>.<random>.tmp`, so rename stays
on one file system), is fsynced, renamed over the target, and the directory is fsynced so that
the rename itself survives a power cut. A writer killed half way leaves only a temp file, never a
short target; `remove_stale_temps` clears such leftovers. Layering: this module sits in training/
(the bottom layer) so training, index and app all use it.
"""

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A fresh hidden temp name beside `path` (pid + random: concurrent writers never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory's fsync makes its renames durable)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every directory bottom-up (before renaming `root` into place)."""
    dirs = []
    for d, _, files in os.walk(root):
        dirs.append(Path(d))
        for f in files:
            fsync_path(Path(d) / f)
    for d in reversed(dirs):
        fsync_path(d)


def publish_dir(tmp: Path, dest: Path) -> None:
    """Moves a fully written temp dir to `dest` durably: its files and dirs fsynced, then renamed,
    then the parent fsynced (fails if `dest` exists: a published dir is never overwritten)."""
    fsync_tree(tmp)
    os.rename(tmp, dest)
    fsync_path(dest.parent)


@contextmanager
def atomic_path(path: str | Path, mkdir: bool = True) -> Iterator[Path]:
    """Yields a temp path to write; on a clean exit it is fsynced and renamed onto `path` (then the
    directory is fsynced). On an error the temp file is removed and `path` is untouched."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Writes `data` (text is UTF-8) to `path` atomically and durably."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def remove_stale_temps(directory: Path, older_than_s: float = 0.0) -> list[Path]:
    """Removes temp files of `atomic_path` in `directory` older than `older_than_s` (left by killed
    writers); returns what it removed. Callers holding a lock on the directory pass 0."""
    removed = []
    for p in directory.glob(f".*{TEMP_SUFFIX}"):
        try:
            if p.is_file() and time.time() - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            pass
    return removed
