"""Where the Chroma backend keeps each chunk's text and metadata values.

A Chroma server keeps them itself (``InChroma``): the text is a Chroma document, the metadata
Chroma metadata, and the server's database is the operator's to purge.

Embedded Chroma keeps them beside Chroma (``BesideChroma``), in ragserver's own SQLite file
``chroma/ragserver_text.sqlite3`` (``secure_delete`` on, the WAL truncated after each delete),
because Chroma cannot forget a deleted text at once: every write goes to its write-ahead log
(the ``embeddings_queue`` table of ``chroma.sqlite3``) with the document and metadata, and
1.5.9 purges a log row only once every segment of the collection has persisted past it (the
HNSW segment persists every ``sync_threshold`` = 1000 writes); the purged rows' bytes then stay
in SQLite free pages until a ``VACUUM`` (chroma-core/chroma#7659, #3793). So Chroma gets only
what it must search and filter on: the vector, numbers and booleans as they are (as floats,
see ``chroma_store``), and each string value as a SHA-256 digest (``string_digest``); filters
are translated through the same digest, which keeps ``$eq``, ``$ne`` and ``$in`` exact (the
only operators strings take). A deleted chunk's text and metadata leave the disk with its row.

The document records of the companion collection (``<name>__docs``) go the same way: the
record as JSON in the side file, its filter view (metadata, ``source``, ``document_id``) as
digests in Chroma. Chroma's upsert merges metadata, so a write sets to None (drops) the keys an
entry's new version lacks (``without_stale_keys``), in both places.

Collections made before this layout hold their text in Chroma; ``BesideChroma.adopt`` moves
it out (text, metadata and records into the side file, then Chroma's copies replaced by
digests and an empty document) and marks the collection ``text_store: ragserver``. What
Chroma's log and free pages still hold from before the move stays there until Chroma purges
and vacuums.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import InvalidRequest
from core.types import Chunk, DocumentRecord
from vectorstores.base import Filter
from vectorstores.common import chunk_order, document_filter_view
from vectorstores.filters import StringCodec, to_chroma_where
from vectorstores.sqlite_util import checkpoint_truncate, connect, transaction

DOC = "_rs_doc"
POS = "_rs_pos"
RESERVED = "_rs_"
INTS = "_rs_ints"
TEXT_STORE = "text_store"  # collection metadata key: "ragserver" once the text lives beside
TEXT_FILE = "ragserver_text.sqlite3"
_BATCH = 500  # ids per "IN (...)" list, under SQLite's parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk_text (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS chunk_text_by_document ON chunk_text (collection, document_id);
CREATE TABLE IF NOT EXISTS record_text (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
"""


def string_digest(value: str) -> str:
    """What embedded Chroma stores for a string metadata value (and filters compare with)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def as_floats(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Store every number as a float (see ``chroma_store``); list the ints in ``INTS``."""
    if any(k.startswith(RESERVED) for k in metadata):
        raise InvalidRequest(f"metadata keys starting with {RESERVED!r} are reserved")
    ints = sorted(k for k, v in metadata.items() if type(v) is int)
    out = {k: float(v) if k in ints else v for k, v in metadata.items()}
    if ints:
        out[INTS] = json.dumps(ints)
    return out


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Undo ``as_floats`` and drop the reserved keys."""
    ints = set(json.loads(metadata.get(INTS, "[]")))
    return {
        k: int(v) if k in ints else v for k, v in metadata.items() if not k.startswith(RESERVED)
    }


def _chroma_metadata(chunk: Chunk, strings: StringCodec | None) -> dict[str, Any]:
    md = as_floats(_digested(chunk.metadata, strings))
    return {**md, DOC: chunk.document_id, POS: chunk_order(chunk)[0]}


def _digested(metadata: Mapping[str, Any], strings: StringCodec | None) -> dict[str, Any]:
    if strings is None:
        return dict(metadata)
    return {k: strings(v) if isinstance(v, str) else v for k, v in metadata.items()}


def _record_metadata(record: DocumentRecord, strings: StringCodec | None) -> dict[str, Any]:
    """The Chroma metadata of a record: its filter view, and in Chroma the whole record."""
    view = as_floats(_digested(document_filter_view(record), strings))
    if strings is not None:
        return view
    return {
        **view,
        "_rs_source": record.source,
        "_rs_hash": record.content_hash,
        "_rs_chunk_count": record.chunk_count,
        "_rs_created": record.created_at,
        "_rs_updated": record.updated_at,
        "_rs_metadata": json.dumps(record.metadata),
    }


def _record(doc_id: str, md: Mapping[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        id=doc_id,
        source=md["_rs_source"],
        content_hash=md["_rs_hash"],
        chunk_count=int(md["_rs_chunk_count"]),
        metadata=json.loads(md["_rs_metadata"]),
        created_at=float(md["_rs_created"]),
        updated_at=float(md["_rs_updated"]),
    )


def without_stale_keys(
    collection: Any, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Set to None (which drops them) the keys an entry has in Chroma that its new version lacks.

    Chroma's upsert and update merge metadata, so a key left out would stay and match filters.
    """
    got = collection.get(ids=list(ids), include=["metadatas"])
    old = dict(zip(got["ids"], got["metadatas"] or [], strict=True))
    return [
        {**dict.fromkeys(set(old.get(i) or {}) - set(md)), **md}
        for i, md in zip(ids, metadatas, strict=True)
    ]


class InChroma:
    """Text and metadata kept in Chroma itself (a Chroma server)."""

    read_fields = ("documents", "metadatas")

    def collection_metadata(self) -> dict[str, Any]:
        """Nothing to mark on a new collection."""
        return {}

    def adopt(self, chunks: Any, docs: Any) -> None:
        """Nothing to move."""

    def put_record(self, collection_id: str, record: DocumentRecord) -> dict[str, Any]:
        """The Chroma metadata that holds ``record``."""
        return _record_metadata(record, None)

    def read_records(self, collection_id: str, got: Mapping[str, Any]) -> list[DocumentRecord]:
        """The records of a Chroma ``get`` answer on the records collection."""
        return [_record(i, md) for i, md in zip(got["ids"], got["metadatas"], strict=True)]

    def where(self, flt: Filter | None) -> dict[str, Any] | None:
        """The Chroma ``where`` clause of a chunk filter."""
        return to_chroma_where(flt)

    def prepare(self, collection_id: str, chunks: Sequence[Chunk]) -> dict[str, Any]:
        """The ``documents`` and ``metadatas`` arguments of Chroma's upsert for ``chunks``."""
        return {
            "documents": [c.text for c in chunks],
            "metadatas": [_chroma_metadata(c, None) for c in chunks],
        }

    def read(self, collection_id: str, got: Mapping[str, Any]) -> list[Chunk]:
        """The chunks of a Chroma ``get`` answer (``ids``, ``documents``, ``metadatas``)."""
        return [
            Chunk(id=i, document_id=md[DOC], text=t or "", metadata=user_metadata(md))
            for i, t, md in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]

    def forget(
        self, collection_id: str, ids: Sequence[str], document_id: str | None = None
    ) -> None:
        """Nothing to forget beside Chroma."""

    def forget_collection(self, collection_id: str) -> None:
        """Nothing to forget beside Chroma."""

    def close(self) -> None:
        """Nothing to close."""


class BesideChroma:
    """Text and metadata in ragserver's SQLite file, digests in Chroma (embedded Chroma)."""

    read_fields = ("metadatas",)

    def __init__(self, folder: Path) -> None:
        """Open (or create) ``folder / TEXT_FILE``."""
        self._conn = connect(folder / TEXT_FILE)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def collection_metadata(self) -> dict[str, Any]:
        """The mark a new collection gets: its text lives here."""
        return {TEXT_STORE: "ragserver"}

    def where(self, flt: Filter | None) -> dict[str, Any] | None:
        """The Chroma ``where`` clause of a chunk filter, string operands digested."""
        return to_chroma_where(flt, string_digest)

    def prepare(self, collection_id: str, chunks: Sequence[Chunk]) -> dict[str, Any]:
        """Store the chunks' text and metadata here; return what Chroma's upsert gets."""
        rows = [
            (collection_id, c.id, c.document_id, c.text, json.dumps(c.metadata)) for c in chunks
        ]
        with self._lock, transaction(self._conn) as conn:
            conn.executemany("INSERT OR REPLACE INTO chunk_text VALUES (?, ?, ?, ?, ?)", rows)
        return {"metadatas": [_chroma_metadata(c, string_digest) for c in chunks]}

    def _rows(self, collection_id: str, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        with self._lock:
            for start in range(0, len(ids), _BATCH):
                part = list(ids[start : start + _BATCH])
                marks = ", ".join("?" * len(part))
                found.update(
                    (i, (t, md))
                    for i, t, md in self._conn.execute(
                        "SELECT id, text, metadata FROM chunk_text "
                        f"WHERE collection = ? AND id IN ({marks})",
                        [collection_id, *part],
                    )
                )
        return found

    def read(self, collection_id: str, got: Mapping[str, Any]) -> list[Chunk]:
        """The chunks of a Chroma ``get`` answer, text and metadata read from here.

        A chunk without a row here is being deleted (its row goes first) and is left out.
        """
        rows = self._rows(collection_id, got["ids"])
        return [
            Chunk(i, md[DOC], rows[i][0], json.loads(rows[i][1]))
            for i, md in zip(got["ids"], got["metadatas"], strict=True)
            if i in rows
        ]

    def put_record(self, collection_id: str, record: DocumentRecord) -> dict[str, Any]:
        """Store ``record`` here; return its filter view, digested, for Chroma."""
        row = (collection_id, record.id, json.dumps(dataclasses.asdict(record)))
        with self._lock, transaction(self._conn) as conn:
            conn.execute("INSERT OR REPLACE INTO record_text VALUES (?, ?, ?)", row)
        return _record_metadata(record, string_digest)

    def _records(self, collection_id: str, ids: Sequence[str]) -> dict[str, DocumentRecord]:
        found: dict[str, DocumentRecord] = {}
        with self._lock:
            for start in range(0, len(ids), _BATCH):
                part = list(ids[start : start + _BATCH])
                found.update(
                    (i, DocumentRecord(**json.loads(record)))
                    for i, record in self._conn.execute(
                        "SELECT id, record FROM record_text "
                        f"WHERE collection = ? AND id IN ({', '.join('?' * len(part))})",
                        [collection_id, *part],
                    )
                )
        return found

    def read_records(self, collection_id: str, got: Mapping[str, Any]) -> list[DocumentRecord]:
        """The records of a Chroma ``get`` answer, read from here (deleted ones left out)."""
        records = self._records(collection_id, got["ids"])
        return [records[i] for i in got["ids"] if i in records]

    def forget(
        self, collection_id: str, ids: Sequence[str], document_id: str | None = None
    ) -> None:
        """Delete the chunks' rows and empty the WAL; called before Chroma deletes them.

        Args:
            collection_id: The Chroma collection's id.
            ids: The chunk ids.
            document_id: The document being deleted: its record, and every row of its
                chunks (rows a crash left behind between this file's write and Chroma's too).
        """
        with self._lock:
            with transaction(self._conn) as conn:
                if document_id is not None:
                    for table, key in (("chunk_text", "document_id"), ("record_text", "id")):
                        conn.execute(
                            f"DELETE FROM {table} WHERE collection = ? AND {key} = ?",
                            [collection_id, document_id],
                        )
                for start in range(0, len(ids), _BATCH):
                    part = list(ids[start : start + _BATCH])
                    conn.execute(
                        "DELETE FROM chunk_text WHERE collection = ? "
                        f"AND id IN ({', '.join('?' * len(part))})",
                        [collection_id, *part],
                    )
            checkpoint_truncate(self._conn)

    def forget_collection(self, collection_id: str) -> None:
        """Delete every row of a collection and empty the WAL."""
        with self._lock:
            with transaction(self._conn) as conn:
                for table in ("chunk_text", "record_text"):
                    conn.execute(f"DELETE FROM {table} WHERE collection = ?", [collection_id])
            checkpoint_truncate(self._conn)

    def adopt(self, chunks: Any, docs: Any, batch: int = 500) -> None:
        """Move a collection made before this layout out of Chroma (see the module docstring).

        Idempotent, so a crash halfway leaves a collection the next open finishes: an entry
        already moved keeps what is stored here, not Chroma's emptied copy.

        Args:
            chunks: The chromadb collection of chunks.
            docs: Its companion collection of document records.
            batch: Entries moved per Chroma write.
        """
        metadata = dict(chunks.metadata or {})
        if metadata.get(TEXT_STORE) == "ragserver":
            return
        collection_id = str(chunks.id)
        for got in _pages(chunks, ["documents", "metadatas", "embeddings"], batch):
            moved = self._rows(collection_id, got["ids"])
            texts = [
                Chunk(c.id, c.document_id, moved[c.id][0], json.loads(moved[c.id][1]))
                if c.id in moved
                else c
                for c in InChroma().read(collection_id, got)
            ]
            chunks.update(
                ids=got["ids"],
                embeddings=got["embeddings"],
                documents=[""] * len(texts),
                metadatas=self.prepare(collection_id, texts)["metadatas"],
            )
        for got in _pages(docs, ["metadatas"], batch):
            done = self._records(collection_id, got["ids"])
            records = [
                done.get(i) or _record(i, md)
                for i, md in zip(got["ids"], got["metadatas"], strict=True)
            ]
            views = [self.put_record(collection_id, r) for r in records]
            docs.update(ids=got["ids"], metadatas=without_stale_keys(docs, got["ids"], views))
        chunks.modify(metadata={**metadata, TEXT_STORE: "ragserver"})

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._conn.close()


def _pages(collection: Any, include: list[str], batch: int) -> Iterator[Mapping[str, Any]]:
    """Every entry of a Chroma collection, ``batch`` at a time (updates keep their order)."""
    offset = 0
    while True:
        got = collection.get(include=include, limit=batch, offset=offset)
        if not got["ids"]:
            return
        yield got
        offset += len(got["ids"])
