"""The SQLite metadata store beside each FAISS index: one row per vector, keyed by its FAISS id.

An image is one row; a video is one row for the whole video (start/end NULL) plus one row per
segment (start/end in seconds), all sharing the item's `item_id`. Rows are written once, when a
version is built, and opened read-only (immutable) afterwards.
"""

import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.errors import BrokenArtifactError, XModalError

SCHEMA = """
CREATE TABLE items (
    key INTEGER PRIMARY KEY,  -- FAISS id in this version: the row's position in vectors.npy
    item_id TEXT NOT NULL,
    media TEXT NOT NULL,      -- "image" | "video"
    path TEXT NOT NULL,       -- absolute media path
    captions TEXT NOT NULL,   -- JSON list of strings
    start REAL,               -- segment start, seconds (NULL for an image or a whole video)
    end REAL,
    meta TEXT NOT NULL        -- JSON object of user metadata
);
CREATE INDEX items_item_id ON items (item_id);
CREATE INDEX items_media ON items (media);
"""
# SQLite's default limit on bound parameters is 32766; stay well below it.
_CHUNK = 900
# A `where` filter: identifier-like field names (so `meta ->> ?` reads the name as one field, never as a
# JSON path) mapped to finite JSON scalars; a few fields at most (each is one clause in the query).
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_FILTER_FIELDS = 16
MAX_FILTER_VALUE_CHARS = 1000


class FilterError(XModalError):
    """A `where` filter the store cannot run; the message names the field and what to fix."""


def filter_json_schema() -> dict:
    """The JSON schema of what check_filter accepts (for the service's OpenAPI document)."""
    return {
        "maxProperties": MAX_FILTER_FIELDS,
        "propertyNames": {"pattern": f"^{FIELD_NAME.pattern}$"},
        "additionalProperties": {"anyOf": [
            {"type": "string", "maxLength": MAX_FILTER_VALUE_CHARS}, {"type": "number"}, {"type": "boolean"},
        ]},
    }  # fmt: skip


def check_filter(where: object) -> dict | None:
    """`where` as a filter the store can run, or FilterError naming the offending field.

    Field names match FIELD_NAME; at most MAX_FILTER_FIELDS of them; values are str (at most
    MAX_FILTER_VALUE_CHARS), bool, int or finite float."""
    if where is None:
        return None
    if not isinstance(where, dict):
        raise FilterError("where: must be an object mapping metadata field names to values")
    if len(where) > MAX_FILTER_FIELDS:
        raise FilterError(f"where: {len(where)} fields is over the limit of {MAX_FILTER_FIELDS}")
    for name, value in where.items():
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            raise FilterError(
                f"where: field name {str(name)[:80]!r} is not allowed; use letters, digits and _ "
                "(not starting with a digit, at most 64 characters)"
            )
        ok = (
            isinstance(value, bool | int)
            or (isinstance(value, float) and math.isfinite(value))
            or (isinstance(value, str) and len(value) <= MAX_FILTER_VALUE_CHARS)
        )
        if not ok:
            raise FilterError(
                f"where.{name}: {str(value)[:80]!r} is not allowed; values are strings (at most "
                f"{MAX_FILTER_VALUE_CHARS} characters), booleans or finite numbers"
            )
    return where


@dataclass
class Row:
    """One vector's metadata; `key` is assigned by position when a version is written."""

    item_id: str
    media: str
    path: str
    captions: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    meta: dict = field(default_factory=dict)
    key: int = -1


def write_store(path: Path, rows: Iterable[Row]) -> int:
    """Writes a fresh meta.sqlite; row i gets key i (the FAISS id of vector i)."""
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        n = 0
        with con:
            for n, r in enumerate(rows, 1):
                con.execute(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n - 1,
                        r.item_id,
                        r.media,
                        r.path,
                        json.dumps(r.captions),
                        r.start,
                        r.end,
                        json.dumps(r.meta),
                    ),
                )
    finally:
        con.close()
    return n


def _row(rec: tuple) -> Row:
    key, item_id, media, path, captions, start, end, meta = rec
    return Row(item_id, media, path, json.loads(captions), start, end, json.loads(meta), key)


class MetaStore:
    """Read-only access to a version's meta.sqlite, one connection per thread (sqlite3 objects are
    not shareable across threads; the service searches from worker threads)."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise BrokenArtifactError(path, "metadata store missing")
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            # immutable=1: the file never changes once published, so SQLite skips locking entirely.
            con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def rows(self, keys: Sequence[int]) -> dict[int, Row]:
        """Rows by FAISS key; unknown keys are absent from the result."""
        out: dict[int, Row] = {}
        keys = [int(k) for k in keys]
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            q = f"SELECT * FROM items WHERE key IN ({','.join('?' * len(part))})"
            for rec in self._con().execute(q, part):
                out[rec[0]] = _row(rec)
        return out

    def count(self) -> int:
        return self._con().execute("SELECT count(*) FROM items").fetchone()[0]

    def all_rows(self) -> list[Row]:
        return [_row(rec) for rec in self._con().execute("SELECT * FROM items ORDER BY key")]

    def item(self, item_id: str) -> list[Row]:
        """All rows of one item: the whole-item row first, then segments by start time."""
        q = "SELECT * FROM items WHERE item_id = ? ORDER BY start IS NOT NULL, start"
        return [_row(rec) for rec in self._con().execute(q, (item_id,))]

    def keys_matching(self, media: str | None = None, where: dict | None = None) -> np.ndarray:
        """Sorted int64 keys whose media equals `media` and whose meta fields equal `where`'s values."""
        clauses, params = [], []
        if media is not None:
            clauses.append("media = ?")
            params.append(media)
        for name, value in (check_filter(where) or {}).items():
            # The name is bound, never formatted into SQL; `->>` reads a label operand as one field.
            # The value goes through json_extract like the stored one, so 1 == 1.0 == true but 1 != "1".
            clauses.append("meta ->> ? = json_extract(?, '$')")
            params += [name, json.dumps(value)]
        q = "SELECT key FROM items" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY key"
        try:
            return np.fromiter((k for (k,) in self._con().execute(q, params)), dtype=np.int64)
        except sqlite3.Error as e:
            raise FilterError(f"where: the metadata store cannot run {where!r} ({e})") from None

    def captions(self) -> list[str]:
        q = "SELECT DISTINCT c.value FROM items, json_each(items.captions) AS c ORDER BY c.value"
        return [c for (c,) in self._con().execute(q)]

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
