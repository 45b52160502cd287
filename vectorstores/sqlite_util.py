"""SQLite connections that leave no copy of deleted rows on disk (FAISS and embedded Chroma).

``connect`` turns on ``secure_delete`` (deleted content is overwritten with zeros) and WAL;
``checkpoint_truncate`` after a delete empties the WAL, which still holds the old page images.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with full fsync, in autocommit (explicit transactions)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Deleted rows are overwritten with zeros, so a deleted document's text leaves the file
    # (with ``checkpoint_truncate`` after the delete, the WAL's old copies go too).
    conn.execute("PRAGMA secure_delete=ON")
    return conn


CHECKPOINT_WAIT_MS = 2000


def checkpoint_truncate(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and truncate it, so no old page copy remains on disk.

    Waits at most ``CHECKPOINT_WAIT_MS`` for readers still in the WAL (searches take
    milliseconds), so a delete never stalls behind a busy stream of searches; if they do not
    leave in time the WAL keeps its frames until the next delete's checkpoint.

    Returns:
        True when the WAL was emptied.
    """
    (timeout,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(timeout)}")
    return not busy


class transaction:  # noqa: N801 - used like a function: ``with transaction(conn):``
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
