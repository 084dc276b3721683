"""Opening a published index and searching it: the API the service uses.

    idx = open_index("photos")                    # CURRENT version, memory-mapped, read-only
    hits = idx.search(queries, k=10, media="video", where={"split": "test"})  # queries (Q, D)
    check_compatible(idx, model)                  # XModalError unless the model embedded this index

Videos have several rows (whole video + segments); a search returns each item once, scored by its
best row, with the best-matching segment's start/end. Filters apply before k: small filtered sets are
searched exactly over the stored vectors, large ones by over-fetching from FAISS.
"""

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index import ondisk
from index.build import to_gpus
from index.publish import current_version, indexes_root, verify_version, versions
from index.store import MetaStore, Row
from training.errors import BrokenArtifactError, XModalError

# Filtered sets up to this many vectors are searched exactly with numpy instead of over-fetching.
EXACT_FILTER_MAX = 50_000


@dataclass
class Hit:
    key: int  # FAISS id in this index version (int64), key in the metadata store
    item_id: str  # corpus item id (unique within the index)
    score: float  # inner product of normalised vectors
    media: str  # "image" | "video"
    path: str  # absolute media path on disk (never sent to clients)
    caption: str | None
    start: float | None  # best-matching segment of a video, seconds
    end: float | None
    meta: dict = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)  # all captions of the item


def _hit(row: Row, score: float, segment: Row | None = None) -> Hit:
    return Hit(
        key=row.key,
        item_id=row.item_id,
        score=float(score),
        media=row.media,
        path=row.path,
        caption=row.captions[0] if row.captions else None,
        start=segment.start if segment else row.start,
        end=segment.end if segment else row.end,
        meta=row.meta,
        captions=row.captions,
    )


def _exact_topk(
    q: np.ndarray, vectors: np.ndarray, fetch: int, block: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-`fetch` by inner product: (scores, row positions), both (Q, fetch), best first.
    Queries go in blocks so the (block, N) score matrix stays small."""
    fetch = min(fetch, len(vectors))
    out_s, out_i = [], []
    for i in range(0, len(q), block):
        scores = q[i : i + block] @ vectors.T  # (B, N)
        if fetch < scores.shape[1]:
            part = np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch]
        else:
            part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        top = np.take_along_axis(scores, part, 1)
        order = np.lexsort((part, -top), axis=1)  # best first; equal scores by row position, so
        # a query gets the same order alone or in a batch
        out_s.append(np.take_along_axis(top, order, 1))
        out_i.append(np.take_along_axis(part, order, 1))
    return np.concatenate(out_s), np.concatenate(out_i)


def _read_faiss(path: Path):
    import faiss

    if ondisk.has_lists(path):
        return ondisk.read_ondisk(path)
    try:  # mmap works for flat and IVF codes; other index types fall back to a plain read
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        return faiss.read_index(str(path))


def _open_artifact(path: Path, opener):
    """opener(path), with any failure to read it (FAISS raises RuntimeError, numpy ValueError, SQLite
    DatabaseError) turned into BrokenArtifactError naming the file."""
    try:
        return opener(path)
    except XModalError:
        raise
    except Exception as e:  # noqa: BLE001 - each library has its own error types for a bad file
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise BrokenArtifactError(path, f"unreadable ({reason})") from None


class LoadedIndex:
    """One opened index version. Thread-safe for concurrent searches (FAISS search is read-only;
    SQLite connections are per thread)."""

    def __init__(self, name: str, version: str, root: Path):
        import faiss

        self.name, self.version, self.root = name, version, root
        self.path = root / name / version
        self.manifest: dict = verify_version(self.path)  # sizes and sha256 of every file
        self._index = _open_artifact(self.path / "index.faiss", _read_faiss)
        self._index, on_gpu = to_gpus(self._index)  # HNSW and refine wrappers stay on CPU
        space = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
        if self.manifest.get("search_params"):
            space.set_index_parameters(self._index, self.manifest["search_params"])
        self._vectors = _open_artifact(
            self.path / "vectors.npy", lambda p: np.load(p, mmap_mode="r")
        )  # (N, D)
        # Exact search on CPU: numpy matmul over the mapped vectors beats FAISS Flat here (100k x 384:
        # 32 vs 64 ms for one query, 0.47 vs 4.2 s for 200; FAISS's bundled BLAS misdetects this CPU)
        self._numpy_flat = self.manifest.get("factory") == "Flat" and not on_gpu
        self._store = _open_artifact(self.path / "meta.sqlite", MetaStore)
        try:
            self._check_sizes()
        except XModalError:
            self._store.close()
            raise
        self._filter_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        # A video contributes 1 + segments rows; fetching k * this many candidates yields k distinct items.
        self._fanout = int(self.manifest.get("max_rows_per_item", 1))

    def _check_sizes(self) -> None:
        """FAISS, vectors and metadata agree on the row count (catches a broken version that predates
        the checksums in manifest.json)."""
        n = _open_artifact(self.path / "meta.sqlite", lambda _: self._store.count())
        want = self.manifest.get("vectors")
        for fname, have in (
            ("index.faiss", self._index.ntotal),
            ("vectors.npy", len(self._vectors)),
            ("meta.sqlite", n),
        ):
            if want is not None and have != want:
                raise BrokenArtifactError(self.path / fname, f"{have} rows, but manifest.json says {want}")

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def _allowed(self, media: str | None, where: dict | None) -> np.ndarray | None:
        if media is None and not where:
            return None
        if media is not None and media not in ("image", "video"):
            raise XModalError(f"media must be 'image' or 'video', got {media!r}")
        cache_key = json.dumps([media, where], sort_keys=True, default=str)
        with self._lock:
            hit = self._filter_cache.get(cache_key)
        if hit is None:
            hit = self._store.keys_matching(media, where)
            with self._lock:
                if len(self._filter_cache) > 256:
                    self._filter_cache.clear()
                self._filter_cache[cache_key] = hit
        return hit

    def _candidates(
        self, q: np.ndarray, fetch: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`fetch` (scores, keys), both (Q, fetch), keys -1 where fewer exist."""
        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            scores, pos = _exact_topk(q, np.asarray(self._vectors[allowed]), fetch)
            return scores, allowed[pos]
        if allowed is None and self._numpy_flat:
            return _exact_topk(q, self._vectors, fetch)
        scores, keys = self._index.search(q, min(fetch, self.ntotal))
        if allowed is not None:
            keep = np.isin(keys, allowed)
            keys = np.where(keep, keys, -1)
            scores = np.where(keep, scores, -np.inf)
            order = np.lexsort((keys, -scores), axis=1)
            scores, keys = np.take_along_axis(scores, order, 1), np.take_along_axis(keys, order, 1)
        return scores, keys

    def search(
        self,
        queries: np.ndarray,
        k: int,
        media: str | None = None,
        where: dict | None = None,
        unique: bool = True,
    ) -> list[list[Hit]]:
        """Top-k items per query, best first; queries (Q, D) float32, L2-normalised.

        `media` ("image" | "video") and `where` ({meta field: value}, all must match) filter before k;
        `unique` leaves out twins (an item whose score and caption repeat an earlier hit's)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise XModalError(
                f"query dimension {q.shape[1]} does not match index {self.name!r} dimension {self.dim}"
            )
        if k <= 0:
            return [[] for _ in q]
        allowed = self._allowed(media, where)
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in q]
        # candidates to rank: the filtered set when it is searched exactly, else the whole FAISS index
        exact = allowed is not None and len(allowed) <= EXACT_FILTER_MAX
        limit = len(allowed) if exact else self.ntotal
        fetch = min(k * self._fanout, limit)
        while True:
            scores, keys = self._candidates(q, fetch, allowed)
            rows = self._store.rows(np.unique(keys[keys >= 0]))
            results = [self._dedupe(s, ks, rows, k, unique) for s, ks in zip(scores, keys, strict=True)]
            if fetch >= limit or all(len(r) >= k for r in results):
                return results
            fetch = min(fetch * 4, limit)

    @staticmethod
    def _dedupe(
        scores: np.ndarray, keys: np.ndarray, rows: dict[int, Row], k: int, unique: bool
    ) -> list[Hit]:
        """One hit per item, scored by its best row, with the best segment's times (candidates are sorted).
        With `unique`, an item whose score and caption repeat an earlier hit's is the same picture filed
        twice (corpora carry such twins under two ids) and is left out."""
        best: dict[str, tuple[Row, float]] = {}
        segment: dict[str, Row] = {}
        twins: set[tuple[float, str | None]] = set()
        for s, key in zip(scores, keys, strict=True):
            row = rows.get(int(key))
            if row is None:
                continue
            if row.item_id not in best:
                twin = (round(float(s), 5), row.captions[0] if row.captions else None)
                if unique and twin in twins:
                    continue
                twins.add(twin)
                best[row.item_id] = (row, s)
            if row.start is not None:
                segment.setdefault(row.item_id, row)
        hits = [_hit(row, s, segment.get(item)) for item, (row, s) in best.items()]
        return hits[:k]  # dict order is candidate order, i.e. by score desc

    def get(self, item_id: str) -> Hit | None:
        """The item's whole-item row (score 0), or None if the index does not hold it."""
        rows = self._store.item(item_id)
        return _hit(rows[0], 0.0) if rows else None

    def vector(self, item_id: str) -> np.ndarray | None:
        """The item's stored (whole-item) embedding, (D,) float32."""
        rows = self._store.item(item_id)
        return np.array(self._vectors[rows[0].key]) if rows else None

    def captions(self) -> list[str]:
        """All distinct captions stored (the service uses them as a caption bank)."""
        return self._store.captions()

    def close(self) -> None:
        self._store.close()
        self._index = None
        self._vectors = None


def open_index(name: str, version: str | None = None, root: Path | None = None) -> LoadedIndex:
    """Opens a version (None: the CURRENT one) read-only; unknown names/versions raise XModalError."""
    root = indexes_root(root)
    if not (root / name).is_dir():
        known = ", ".join(d["name"] for d in list_indexes(root)) or "none"
        raise XModalError(f"index {name!r} not found in {root}; known: {known}")
    version = version or current_version(name, root)
    have = versions(name, root)
    if version is None or version not in have:
        raise XModalError(f"index {name!r} has no version {version!r}; versions: {', '.join(have) or 'none'}")
    return LoadedIndex(name, version, root)


def list_indexes(root: Path | None = None) -> list[dict]:
    """Published indexes: name, current version, versions, count, fingerprint (and factory, dim)."""
    root = indexes_root(root)
    out = []
    for d in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        cur = current_version(d.name, root)
        if cur is None:
            continue
        try:
            m = json.loads((d / cur / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append(
            {
                "name": d.name,
                "current": cur,
                "versions": versions(d.name, root),
                "count": m.get("count"),
                "fingerprint": m.get("model_fingerprint"),
                "factory": m.get("factory"),
                "dim": m.get("dim"),
            }
        )
    return out


def check_compatible(index: LoadedIndex | dict, model) -> None:
    """Raises XModalError naming both fingerprints unless `model` is the one that embedded the index.
    `index` is a LoadedIndex or its manifest dict; `model` an XModalModel or a fingerprint string."""
    manifest = index.manifest if isinstance(index, LoadedIndex) else index
    want = manifest.get("model_fingerprint")
    have = model if isinstance(model, str) or model is None else getattr(model, "fingerprint", None)
    name = manifest.get("name", "?")
    if want is None or have != want:
        raise XModalError(
            f"index {name!r} was embedded by model {want or 'unknown'}, but the model has fingerprint "
            f"{have or 'none (not loaded from a saved model dir)'}; rebuild the index with this model"
        )
    dim = getattr(model, "embed_dim", None)
    if dim is not None and int(dim) != int(manifest.get("dim", dim)):
        raise XModalError(f"index {name!r} has dimension {manifest['dim']}, model embeds {dim}")
