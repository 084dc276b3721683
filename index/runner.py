"""The indexing job: read -> decode (DataLoader workers) -> embed -> shard files -> merge -> FAISS -> publish.

Resumable: every chunk of `batch_size` records is written as one shard file (training.atomic: temp
file, fsync, rename) and then logged with its length and sha256 in journal-<rank>.jsonl, in a work dir
keyed by the job's inputs. A re-run after a crash (even SIGKILL or a power cut) keeps the chunks whose
shard matches its journal entry and re-embeds the rest (missing, torn, or never journalled), so every
item ends up in the index exactly once.

Publishing holds the index's writer lock (index/publish.py). An `add` whose base version was replaced
by another writer meanwhile is rebased onto the new CURRENT, so concurrent adds both land.

Sharded: under `torchrun --nproc_per_node=N` rank r embeds chunks r, r+N, ...; after a barrier
rank 0 merges the shards in chunk order and builds, so the result equals a single-process run.
"""

import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from index.build import validate_factory
from index.embed import ChunkDataset, collate_chunk, embed_chunk
from index.publish import current_version, indexes_root, write_version, writer_lock
from index.readers import Record
from index.store import MetaStore, Row
from training.atomic import write_atomic
from training.distributed import init_distributed
from training.errors import XModalError
from training.video import VideoConfig


@dataclass
class JobConfig:
    batch_size: int = 64  # records per forward pass; also one resumable shard
    workers: int = 2  # DataLoader decode processes (0: decode in the main process)
    prefetch: int = 2  # chunks each worker decodes ahead of the model
    factory: str = "auto"  # FAISS factory string, or "auto" by corpus size
    video: VideoConfig = field(default_factory=VideoConfig)


@dataclass
class Base:
    """The published version an incremental job extends: its rows and vectors are reused as is."""

    version: str
    manifest: dict
    rows: list[Row]
    vectors: np.ndarray  # (N, D)


def load_base(name: str, root: Path | None = None) -> Base:
    """The CURRENT version's rows, vectors and manifest (for add/remove)."""
    root = indexes_root(root)
    version = current_version(name, root)
    if version is None:
        raise XModalError(f"index {name!r} not found in {root}; build it first with `xmodal index build`")
    vdir = root / name / version
    store = MetaStore(vdir / "meta.sqlite")
    try:
        rows = store.all_rows()
    finally:
        store.close()
    return Base(
        version, json.loads((vdir / "manifest.json").read_text()), rows, np.load(vdir / "vectors.npy")
    )




def job_key(records: list[Record], fingerprint: str, cfg: JobConfig, base: str | None) -> str:
    """Same inputs, same key: a re-run finds the shards of the interrupted one."""
    h = hashlib.sha256()
    h.update(json.dumps([fingerprint, cfg.batch_size, asdict(cfg.video), base]).encode())
    for r in records:
        h.update(f"{r.item_id}\t{r.path}\n".encode())
    return h.hexdigest()[:16]


def _shard(work: Path, chunk: int) -> Path:
    return work / f"shard-{chunk:06d}.npz"


def _write_shard(work: Path, chunk: int, vectors: np.ndarray, rows: list[Row], failures: list[dict]) -> dict:
    """Atomic and durable: a shard file either holds the whole chunk or does not exist. Returns its
    journal fields (length and sha256), to be logged after the shard is in place."""
    buf = io.BytesIO()
    np.savez(
        buf,
        vectors=vectors,
        rows=np.array(json.dumps([asdict(r) for r in rows])),
        failures=np.array(json.dumps(failures)),
    )
    data = buf.getvalue()
    write_atomic(_shard(work, chunk), data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _journal(work: Path) -> dict[int, dict]:
    """chunk -> its last journal entry, from every rank's journal; torn lines (a kill mid-append) are
    ignored, so their chunks count as not done."""
    entries: dict[int, dict] = {}
    for path in sorted(work.glob("journal*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                entries[int(entry["chunk"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return entries


def verified_chunks(work: Path, chunks: list[int]) -> set[int]:
    """The chunks among `chunks` whose shard exists and matches its journal entry's length and sha256.
    A shard that fails (torn by a power cut, overwritten, never journalled) is removed, to be re-embedded."""
    journal = _journal(work)
    good = set()
    for c in chunks:
        path = _shard(work, c)
        if not path.is_file():
            continue
        entry = journal.get(c, {})
        data = path.read_bytes()
        if len(data) == entry.get("bytes") and hashlib.sha256(data).hexdigest() == entry.get("sha256"):
            good.add(c)
            continue
        why = (
            "not in the journal"
            if not entry
            else f"fails its check ({len(data)} bytes, {entry.get('bytes')} logged)"
        )
        print(f"{path}: {why}; re-embedding chunk {c}", file=sys.stderr)
        path.unlink()
    return good


def _read_shard(path: Path) -> tuple[np.ndarray, list[Row], list[dict]]:
    with np.load(path, allow_pickle=False) as z:
        rows = [Row(**r) for r in json.loads(str(z["rows"]))]
        return z["vectors"], rows, json.loads(str(z["failures"]))


def embed_to_shards(
    model,
    records: list[Record],
    work: Path,
    cfg: JobConfig,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
) -> dict:
    """Embeds this rank's chunks that have no shard yet; returns per-stage timings and counts."""
    n_chunks = math.ceil(len(records) / cfg.batch_size)
    mine = [c for c in range(n_chunks) if c % world == rank]
    done = verified_chunks(work, mine)
    todo = [c for c in mine if c not in done]
    ds = ChunkDataset(records, todo, cfg.batch_size, model.preprocess, cfg.video)
    size = {c: len(ds.chunk_records(c)) for c in mine}
    stats = {"items": 0, "resumed_items": sum(size[c] for c in mine) - sum(size[c] for c in todo)}
    t = dict.fromkeys(("decode", "wait_for_data", "embed", "write_shards"), 0.0)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        num_workers=cfg.workers,
        prefetch_factor=cfg.prefetch if cfg.workers else None,
        collate_fn=collate_chunk,
        pin_memory=model.device.type == "cuda",
    )
    bar = tqdm(
        total=sum(size.values()),
        initial=stats["resumed_items"],
        unit="item",
        desc=f"embed[{rank}]" if world > 1 else "embed",
        disable=not progress,
        smoothing=0.1,
    )
    skipped = 0
    t_loop = time.perf_counter()
    with bar, open(work / f"journal-{rank}.jsonl", "a") as journal:
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            decoded = next(it, None)
            t1 = time.perf_counter()
            if decoded is None:
                break
            recs = ds.chunk_records(decoded.chunk)
            vectors, rows = embed_chunk(model, decoded, recs)
            t2 = time.perf_counter()
            failures = [
                {"item_id": recs[p].item_id, "path": recs[p].path, "reason": why}
                for p, why in decoded.failures
            ]
            check = _write_shard(work, decoded.chunk, vectors, rows, failures)
            entry = {"chunk": decoded.chunk, "rank": rank, "items": len(recs), "rows": len(rows)}
            journal.write(json.dumps({**entry, "failed": len(failures), **check}) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
            t3 = time.perf_counter()
            t["wait_for_data"] += t1 - t0
            t["embed"] += t2 - t1
            t["write_shards"] += t3 - t2
            t["decode"] += decoded.decode_s
            stats["items"] += len(recs)
            skipped += len(failures)
            bar.update(len(recs))
            bar.set_postfix(skipped=skipped, refresh=False)
    wall = time.perf_counter() - t_loop
    stats.update(loop_s=wall, items_per_s=stats["items"] / wall if wall > 0 else 0.0, timings=t)
    return stats


def merge_shards(work: Path, n_chunks: int) -> tuple[np.ndarray, list[Row], list[dict]]:
    """All shards in chunk order: vectors (R, D), rows and failures (each shard checked first)."""
    good = verified_chunks(work, list(range(n_chunks)))
    missing = [c for c in range(n_chunks) if c not in good]
    if missing:
        raise XModalError(
            f"{work}: {len(missing)} chunk shards missing or torn (first: {missing[0]}); re-run the job"
        )
    parts = [_read_shard(_shard(work, c)) for c in range(n_chunks)]
    vectors = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 0), np.float32)
    return vectors, [r for p in parts for r in p[1]], [f for p in parts for f in p[2]]


def run_job(
    name: str,
    model,
    records: list[Record],
    sources: list[str],
    cfg: JobConfig,
    root: Path | None = None,
    base: Base | None = None,
    progress: bool = True,
    read_s: float = 0.0,
) -> dict | None:
    """Embeds `records` (skipping ids already in `base`), builds and publishes a new version.
    Returns the job report on rank 0 (None on other ranks)."""
    root = indexes_root(root)
    validate_factory(cfg.factory, model.embed_dim)
    env = init_distributed()
    rank, world = env.rank, env.world
    if base is not None:
        from index.search import check_compatible

        check_compatible(base.manifest, model)
        have = {r.item_id for r in base.rows}
        already = sum(r.item_id in have for r in records)
        records = [r for r in records if r.item_id not in have]
        if not records:
            raise XModalError(f"nothing to add: all {already} items are already in index {name!r}")
    else:
        already = 0
    work = root / name / ".work" / job_key(records, model.fingerprint, cfg, base and base.version)
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(
        work / "job.json", json.dumps({"name": name, "sources": sources, "config": asdict(cfg)}, indent=2)
    )
    try:
        stats = embed_to_shards(model, records, work, cfg, rank, world, progress)
    except OSError as e:  # disk full or an I/O error while writing a shard
        raise XModalError(
            f"index {name!r}: writing chunk shards in {work} failed ({e}); nothing was published; "
            "the chunks already written are kept: re-run the same command to resume"
        ) from e
    if world > 1:  # every rank's shards are on disk; nothing collective follows
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if rank != 0:
        return None
    t0 = time.perf_counter()
    n_chunks = math.ceil(len(records) / cfg.batch_size)
    vectors, rows, failures = merge_shards(work, n_chunks)
    merge_s = time.perf_counter() - t0
    with writer_lock(name, root):  # held until CURRENT names the new version
        rebased = 0
        if base is not None and current_version(name, root) != base.version:
            # another writer published meanwhile: build on its version; items it added are not re-added
            base = load_base(name, root)
            have = {r.item_id for r in base.rows}
            keep = np.array([r.item_id not in have for r in rows], dtype=bool)
            rebased = len({r.item_id for r in rows} & have)
            vectors, rows = vectors[keep], [r for r, k in zip(rows, keep, strict=True) if k]
        manifest = {
            "model_fingerprint": model.fingerprint,
            "corpus": sources,
            "factory_requested": cfg.factory,
            "video": asdict(cfg.video),
        }
        if base is not None:
            vectors = np.concatenate([base.vectors, vectors]) if len(vectors) else base.vectors
            rows = base.rows + rows
            manifest = {
                **base.manifest,
                "corpus": base.manifest.get("corpus", []) + sources,
                "parent": base.version,
            }
        manifest["max_rows_per_item"] = _max_rows_per_item(rows)
        report = {
            "index": name,
            "workers": cfg.workers,
            "world_size": world,
            "batch_size": cfg.batch_size,
            "new_items": len(records) - len(failures) - rebased,
            "resumed_items": stats["resumed_items"],
            "already_indexed": already + rebased,
            "skipped": len(failures),
            "failures": failures,
            "items_per_s": round(stats["items_per_s"], 2),
        }
        t1 = time.perf_counter()
        vdir = write_version(
            name,
            vectors,
            rows,
            manifest,
            cfg.factory,
            root,
            extra_files={"report.json": json.dumps(report, indent=2)},
        )
    publish_s = time.perf_counter() - t1
    shutil.rmtree(work, ignore_errors=True)
    built = json.loads((vdir / "manifest.json").read_text())
    report.update(
        version=vdir.name,
        count=built["count"],
        vectors=built["vectors"],
        factory=built["factory"],
        timings={
            "read": read_s,
            **stats["timings"],
            "merge": merge_s,
            "faiss_build": built["faiss_build_s"],
            "publish": publish_s - built["faiss_build_s"],
        },
    )
    return report


def _max_rows_per_item(rows: list[Row]) -> int:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.item_id] = counts.get(r.item_id, 0) + 1
    return max(counts.values(), default=1)


def remove_items(
    name: str, ids: list[str] | None, where: dict | None, factory: str | None = None, root: Path | None = None
) -> dict:
    """A new version without the items named by `ids` or matching `where` (meta fields); no re-embedding."""
    root = indexes_root(root)
    with writer_lock(name, root):  # the base read here is the version this replaces
        return _remove_locked(name, ids, where, factory, root)


def _remove_locked(
    name: str, ids: list[str] | None, where: dict | None, factory: str | None, root: Path
) -> dict:
    base = load_base(name, root)
    present = {r.item_id for r in base.rows}
    drop: set[str] = set()
    if ids:
        unknown = [i for i in ids if i not in present]
        if unknown:
            raise XModalError(
                f"index {name!r} has no item(s) {', '.join(map(repr, unknown[:5]))}"
                + (" ..." if len(unknown) > 5 else "")
            )
        drop |= set(ids)
    if where:
        store = MetaStore(root / name / base.version / "meta.sqlite")
        try:
            keys = set(store.keys_matching(None, where).tolist())
        finally:
            store.close()
        matched = {r.item_id for r in base.rows if r.key in keys}
        if not matched:
            raise XModalError(f"no items in index {name!r} match {where}")
        drop |= matched
    if not drop:
        raise XModalError("give --ids or --where to choose the items to remove")
    keep = np.array([r.item_id not in drop for r in base.rows], dtype=bool)
    if not keep.any():
        raise XModalError(f"removing {len(drop)} items would leave index {name!r} empty")
    rows = [r for r, k in zip(base.rows, keep, strict=True) if k]
    manifest = {**base.manifest, "parent": base.version, "max_rows_per_item": _max_rows_per_item(rows)}
    vdir = write_version(
        name,
        base.vectors[keep],
        rows,
        manifest,
        factory or base.manifest.get("factory_requested", "auto"),
        root,
    )
    return {
        "index": name,
        "version": vdir.name,
        "removed": len(drop),
        "count": len({r.item_id for r in rows}),
    }
