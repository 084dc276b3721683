"""An index larger than RAM: IVF-PQ whose inverted lists live in one file on disk, merged from shards.

The way clip-retrieval/autofaiss served LAION-5B from one machine (FAISS `contrib.ondisk`):

    trained = train_empty(sample (S, D), "IVF4096,PQ48", out / "trained.faiss")   # once
    write_shard(out / "trained.faiss", vectors (n, D), first_id, out / "shard-0.faiss")  # per node/rank
    merge_shards(out / "trained.faiss", [shard paths], out / "v0001")
        -> v0001/index.faiss (quantizers, a few MB) + v0001/lists.ivfdata (every code)
    index = read_ondisk(v0001 / "index.faiss")                     # read-only, lists memory-mapped

Shards are written independently (each node adds its slice, with global ids, to a copy of the one
trained index), so they can be made anywhere and only the merge reads them all, through mmap.
The service's reader (index.search) opens such a version the same way: the lists stay on disk and
the page cache keeps the hot ones.
"""

from pathlib import Path

import numpy as np

from index.build import build_faiss
from training.errors import XModalError

LISTS = "lists.ivfdata"  # beside index.faiss; found there wherever the version directory is mounted


def train_empty(sample: np.ndarray, factory: str, out: Path) -> Path:
    """Trains `factory` (an IVF factory without a refine step) on `sample` (S, D) and saves it empty."""
    import faiss

    if not factory.startswith("IVF") or "RFlat" in factory or "Refine" in factory:
        raise XModalError(
            f"on-disk indexes need an IVF factory without a refine step (e.g. IVF4096,PQ48), got {factory!r}"
        )
    index, _, _ = build_faiss(np.ascontiguousarray(sample, dtype=np.float32), factory, progress=False)
    index.reset()  # keeps the coarse quantizer and PQ codebooks, drops the sample's codes
    faiss.write_index(index, str(out))
    return out


def write_shard(trained: Path, vectors: np.ndarray, first_id: int, out: Path) -> Path:
    """One shard: the trained index with `vectors` (n, D) added as ids first_id .. first_id + n - 1."""
    import faiss

    index = faiss.read_index(str(trained))
    ids = np.arange(first_id, first_id + len(vectors), dtype=np.int64)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    faiss.write_index(index, str(out))
    return out


def merge_shards(trained: Path, shards: list[Path], out_dir: Path) -> Path:
    """Merges the shards' inverted lists into out_dir/lists.ivfdata; returns out_dir/index.faiss."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    if not shards:
        raise XModalError("merge_shards: no shard files given")
    missing = [str(s) for s in shards if not Path(s).is_file()]
    if missing:
        raise XModalError(f"merge_shards: shard files not found: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    index = faiss.read_index(str(trained))
    merge_ondisk(index, [str(s) for s in shards], str(out_dir / LISTS))
    faiss.write_index(index, str(out_dir / "index.faiss"))
    return out_dir / "index.faiss"


def has_lists(path: Path) -> bool:
    """Whether the index file at `path` keeps its inverted lists in the lists file beside it."""
    return (Path(path).parent / LISTS).is_file()


def read_ondisk(path: Path):
    """Opens a merged index read-only; its lists are memory-mapped from the lists file in the same
    directory. (Not with IO_FLAG_MMAP: faiss 1.15 then crashes on the first search of on-disk lists.)"""
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_ONDISK_SAME_DIR)
