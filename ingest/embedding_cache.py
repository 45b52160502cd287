"""A persistent cache of chunk embeddings, so an unchanged chunk is never embedded twice.

Keyed by the sha256 of the exact text the model embeds (``embedding_text(chunk)``: heading path
and chunk text) within a namespace naming the model and its numeric backend
(``all-MiniLM-L6-v2|bfloat16``), so vectors of another model or backend are never mixed in.
An edited document re-embeds only the chunks whose text changed; re-ingesting a folder after
``delete_document`` or into another collection embeds nothing.

Layout: one SQLite file, ``<data_dir>/cache/embeddings.sqlite3`` (WAL, ``synchronous=NORMAL``:
a crash may lose the last writes of a cache, never corrupt it), with a ``namespaces`` table
and ``embeddings(namespace, key, vector, used)``: ``key`` the 32-byte sha256, ``vector`` the
float32 row as bytes (1,536 bytes for 384 dimensions), ``used`` the Unix time it was last
written or read. Lookups and writes go in batches of ``_BATCH`` keys per statement.

Size: bounded by ``max_bytes`` (counted as rows times their vector size plus ~100 bytes of key
and index overhead); past it, the least recently used fifth is deleted. The file does not
shrink by itself (SQLite reuses the freed pages); deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingCache", "text_key"]

logger = logging.getLogger(__name__)

_BATCH = 500
_ROW_OVERHEAD = 100
_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS embeddings (
    namespace INTEGER NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings (used);
"""


def text_key(text: str) -> bytes:
    """Return the cache key of an embedded text: its sha256 digest (32 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Float32 vectors by (namespace, text), in SQLite; safe to share between threads.

    Attributes:
        path: The SQLite file.
        max_bytes: Size bound (see the module docstring).
        hits: Vectors found since opening.
        misses: Texts looked up and not found since opening.
    """

    def __init__(self, path: Path, max_bytes: int = 2_000_000_000) -> None:
        """Open (or create) the cache file; an unreadable one is moved aside and recreated."""
        self.path = path
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._namespaces: dict[str, int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            logger.warning("embedding cache %s is unreadable (%s); moved to %s", path, exc, aside)
            path.replace(aside)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            self._db = self._open()
        self._rows = int(self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _namespace(self, name: str) -> int:
        found = self._namespaces.get(name)
        if found is None:
            self._db.execute("INSERT OR IGNORE INTO namespaces (name) VALUES (?)", (name,))
            row = self._db.execute("SELECT id FROM namespaces WHERE name = ?", (name,)).fetchone()
            found = self._namespaces[name] = int(row[0])
        return found

    def __len__(self) -> int:
        """Return the number of vectors stored, all namespaces together."""
        return self._rows

    def get_many(
        self, namespace: str, texts: Sequence[str], dimension: int
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Look texts up; return ``{index into texts: vector}`` for those found.

        Rows of another dimension than ``dimension`` are treated as missing.
        """
        keys = [text_key(text) for text in texts]
        positions: dict[bytes, list[int]] = {}
        for index, key in enumerate(keys):
            positions.setdefault(key, []).append(index)
        unique = list(positions)
        found: dict[int, npt.NDArray[np.float32]] = {}
        now = int(time.time())
        with self._lock:
            ns = self._namespace(namespace)
            for start in range(0, len(unique), _BATCH):
                part = unique[start : start + _BATCH]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, vector FROM embeddings WHERE namespace = ? AND key IN ({marks})",
                    (ns, *part),
                ).fetchall()
                fresh = []
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape[0] != dimension:
                        continue
                    fresh.append(key)
                    for index in positions[bytes(key)]:
                        found[index] = vector
                if fresh:
                    marks = ",".join("?" * len(fresh))
                    self._db.execute(
                        f"UPDATE embeddings SET used = ? WHERE namespace = ? AND key IN ({marks})",
                        (now, ns, *fresh),
                    )
        self.hits += len(found)
        self.misses += len(texts) - len(found)
        return found

    def put_many(
        self, namespace: str, texts: Sequence[str], vectors: npt.NDArray[np.float32]
    ) -> None:
        """Store ``vectors[i]`` for ``texts[i]``; a text already stored keeps its vector."""
        if not texts:
            return
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        now = int(time.time())
        with self._lock:
            ns = self._namespace(namespace)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO embeddings (namespace, key, vector, used) "
                    "VALUES (?, ?, ?, ?)",
                    ((ns, text_key(t), rows[i].tobytes(), now) for i, t in enumerate(texts)),
                )
                self._rows += self._db.total_changes - before
                self._evict(row_bytes=rows.shape[1] * 4 + _ROW_OVERHEAD)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _evict(self, row_bytes: int) -> None:
        limit = max(1, self.max_bytes // row_bytes)
        if self._rows <= limit:
            return
        excess = self._rows - limit + limit // 5
        self._db.execute(
            "DELETE FROM embeddings WHERE (namespace, key) IN "
            "(SELECT namespace, key FROM embeddings ORDER BY used LIMIT ?)",
            (excess,),
        )
        self._rows = int(self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0])
        logger.info("embedding cache over its bound: %d oldest vectors evicted", excess)

    def close(self) -> None:
        """Close the file (the object is unusable afterwards)."""
        with self._lock:
            self._db.close()
