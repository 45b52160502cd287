"""The Chroma backend: embedded (``PersistentClient``) or a Chroma server (``HttpClient``).

Storage: a collection ``<name>`` holds the chunks (our own embeddings, ``embedding_function``
is always None; cosine space; collection metadata ``embedding_model``, ``dimension``,
``created``, and ``text_store`` when embedded). Where each chunk's text and metadata values
live is ``chroma_content``'s business: in Chroma on a Chroma server; embedded, in ragserver's
own SQLite file beside Chroma (so that a delete removes them from disk at once), with only
digests of the strings in Chroma for filtering. Each chunk's Chroma metadata is its own
plus two reserved keys, ``_rs_doc`` (document id) and ``_rs_pos`` (position), stripped again
on read. Numbers are stored as floats, with the names of the int-valued keys in ``_rs_ints`` to
restore them on read: Chroma 1.5 truncates a fractional operand compared with an int value
(``{"page": 1.5}`` matches ``page=1``), while float-to-float comparisons are exact (ints beyond
2**53 lose precision). A companion collection
``<name>__docs`` (hence the reserved ``__docs`` suffix) holds one entry per document record
with a dummy 1-dimensional embedding: its metadata is the record's filter view (metadata,
``source``, ``document_id``) plus reserved ``_rs_*`` fields (hash, chunk count, timestamps, the
user metadata as JSON) on a Chroma server; embedded, the record lives beside Chroma and the
filter view is digested.

Chroma has no transactions: ``replace_document`` writes the new chunks, then deletes the stale
ones, then writes the record, so a crash leaves the old or the new version searchable and the
record's old hash makes the next ingestion redo the document. Chroma cannot order ties by id or
sort documents by source, so both happen in Python (``list_documents`` reads all matching
records, then pages).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import (
    BackendUnavailable,
    CollectionExists,
    CollectionNotFound,
    ConfigurationError,
    InvalidRequest,
)
from core.types import Chunk, DocumentRecord, Hit
from vectorstores.base import CollectionInfo, Filter, Vector, check_embedding, check_vectors
from vectorstores.chroma_content import DOC, BesideChroma, InChroma, without_stale_keys
from vectorstores.common import (
    RESERVED_SUFFIX,
    check_dimension,
    check_top_k,
    chunk_order,
    clean_chunks,
    page,
    prepare_query,
    sort_hits,
    stamp_record,
    validate_collection_name,
)

_COSINE = {"hnsw": {"space": "cosine"}}


@contextmanager
def _reachable(where: str) -> Iterator[None]:
    """Turn connection failures of the Chroma client into ``BackendUnavailable``."""
    import httpx

    try:
        yield
    except (httpx.TransportError, ConnectionError) as exc:
        raise BackendUnavailable(f"Chroma is not reachable ({where}): {exc}") from exc


def _not_found(exc: Exception) -> bool:
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError) or "does not exist" in str(exc)


class ChromaStore:
    """One collection of the Chroma backend (see the module docstring)."""

    supports_filters = True

    def __init__(
        self, chunks: Any, docs: Any, batch_size: int, content: InChroma | BesideChroma
    ) -> None:
        """Wrap a chunk collection and its companion record collection.

        Args:
            chunks: The chromadb collection of chunks.
            docs: The chromadb collection of document records.
            batch_size: Most records per chromadb write.
            content: Where the chunks' text and metadata values live (``chroma_content``).
        """
        self._chunks = chunks
        self._docs = docs
        self._batch = batch_size
        self._content = content
        self._id = str(chunks.id)
        self.name: str = chunks.name
        self.embedding_model = str(chunks.metadata["embedding_model"])
        self.dimension = int(chunks.metadata["dimension"])

    # -- writes -------------------------------------------------------------------------

    def _write(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        for start in range(0, len(chunks), self._batch):
            part = chunks[start : start + self._batch]
            fields = self._content.prepare(self._id, part)
            ids = [c.id for c in part]
            fields["metadatas"] = without_stale_keys(self._chunks, ids, fields["metadatas"])
            self._chunks.upsert(ids=ids, embeddings=vectors[start : start + self._batch], **fields)

    def _delete_ids(self, ids: Sequence[str], document_id: str | None = None) -> None:
        # The text first: a crash between leaves none, and readers skip the chunks at once.
        self._content.forget(self._id, ids, document_id)
        for start in range(0, len(ids), self._batch):
            self._chunks.delete(ids=list(ids[start : start + self._batch]))

    def _owners(self, chunk_ids: Sequence[str]) -> set[str]:
        if not chunk_ids:
            return set()
        got = self._chunks.get(ids=list(chunk_ids), include=["metadatas"])
        return {md[DOC] for md in got["metadatas"] or []}

    def _recount(self, document_ids: set[str]) -> None:
        for doc_id in document_ids:
            record = self.get_document(doc_id)
            if record is not None:
                n = len(self._chunks.get(where={DOC: doc_id}, include=[])["ids"])
                if n != record.chunk_count:
                    self._put_record(dataclasses.replace(record, chunk_count=n))

    def _put_record(self, record: DocumentRecord) -> None:
        metadata = self._content.put_record(self._id, record)
        metadatas = without_stale_keys(self._docs, [record.id], [metadata])
        self._docs.upsert(ids=[record.id], embeddings=[[1.0]], metadatas=metadatas)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        """Insert or replace chunks by id (see ``VectorStore.upsert``)."""
        cleaned = clean_chunks(chunks)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        with _reachable("upsert"):
            touched = self._owners([c.id for c in cleaned]) | {c.document_id for c in cleaned}
            self._write(cleaned, arr)
            self._recount(touched)

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Vector
    ) -> None:
        """Write the new chunks, delete the stale ones, then write the record."""
        cleaned = clean_chunks(chunks, record.id)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        with _reachable("replace_document"):
            new_ids = {c.id for c in cleaned}
            old_ids = self._chunks.get(where={DOC: record.id}, include=[])["ids"]
            others = self._owners(sorted(new_ids)) - {record.id}
            previous = self.get_document(record.id)
            self._write(cleaned, arr)
            self._delete_ids([i for i in old_ids if i not in new_ids])
            self._put_record(stamp_record(record, previous, len(cleaned)))
            self._recount(others)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by id; missing ids are ignored."""
        with _reachable("delete"):
            touched = self._owners(list(chunk_ids))
            self._delete_ids(list(chunk_ids))
            self._recount(touched)

    def delete_document(self, document_id: str) -> bool:
        """Delete a document's record and chunks (Chroma's metadata index finds them)."""
        with _reachable("delete_document"):
            ids = self._chunks.get(where={DOC: document_id}, include=[])["ids"]
            self._delete_ids(ids, document_id)
            existed = bool(self._docs.get(ids=[document_id], include=[])["ids"])
            self._docs.delete(ids=[document_id])
            return existed or bool(ids)

    # -- reads --------------------------------------------------------------------------

    def search(
        self,
        vector: Vector,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Cosine search (similarity ``1 - distance``); ties ordered by id in Python."""
        check_top_k(top_k)
        query = prepare_query(vector, self.dimension, self.name)
        where = self._content.where(filter)
        include = [*self._content.read_fields, "distances"]
        asked = top_k + 1  # one more than wanted, to see whether the cut falls inside a tie
        with _reachable("search"):
            while True:
                got = self._chunks.query(
                    query_embeddings=query,
                    n_results=asked,
                    where=where,
                    include=include,
                )
                distances = got["distances"][0]
                if len(distances) < asked or distances[-1] != distances[top_k - 1]:
                    break
                asked *= 2  # ties at the cut: fetch more so they can be ordered by id
        first = {field: got[field][0] for field in ("ids", *self._content.read_fields)}
        chunks = {c.id: c for c in self._content.read(self._id, first)}
        hits = [
            Hit(chunks[i], 1.0 - float(d))
            for i, d in zip(first["ids"], distances, strict=True)
            if i in chunks  # not a chunk being deleted
        ]
        return sort_hits(hits, top_k, score_threshold)

    def count(self) -> int:
        """Return the number of chunks stored."""
        with _reachable("count"):
            return int(self._chunks.count())

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """Return a document's record, or None."""
        with _reachable("get_document"):
            got = self._docs.get(ids=[document_id], include=["metadatas"])
        records = self._content.read_records(self._id, got)
        return records[0] if records else None

    def _documents(self, filter: Filter | None) -> list[DocumentRecord]:
        where = self._content.where(filter)
        with _reachable("list_documents"):
            got = self._docs.get(where=where, include=["metadatas"])
        records = self._content.read_records(self._id, got)
        records.sort(key=lambda r: (r.source, r.id))
        return records

    def list_documents(
        self, filter: Filter | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DocumentRecord]:
        """Return records ordered by source, filtered on metadata, ``source``, ``document_id``."""
        return page(self._documents(filter), limit, offset)

    def count_documents(self, filter: Filter | None = None) -> int:
        """Return the number of documents matching ``filter``."""
        if not filter:
            with _reachable("count_documents"):
                return int(self._docs.count())
        return len(self._documents(filter))

    def get_chunks(self, document_id: str) -> list[Chunk]:
        """Return a document's chunks ordered by position, then id."""
        with _reachable("get_chunks"):
            got = self._chunks.get(
                where={DOC: document_id}, include=list(self._content.read_fields)
            )
        return sorted(self._content.read(self._id, got), key=chunk_order)

    def all_chunks(self) -> list[Chunk]:
        """Return every chunk, ordered by document id, position, id."""
        chunks: list[Chunk] = []
        with _reachable("all_chunks"):
            offset = 0
            while True:
                got = self._chunks.get(
                    include=list(self._content.read_fields), limit=self._batch, offset=offset
                )
                chunks += self._content.read(self._id, got)
                if len(got["ids"]) < self._batch:
                    break
                offset += self._batch
        return sorted(chunks, key=lambda c: (c.document_id, *chunk_order(c)))

    def version(self) -> None:
        """Return None: no write counter is kept (Chroma keeps no write counter)."""
        return None

    def persist(self) -> None:
        """Do nothing: Chroma persists every write itself."""

    def close(self) -> None:
        """Do nothing: the client owns the connection."""


def _parse_url(url: str) -> tuple[str, int, bool]:
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"chroma url must look like http://host:port, got {url!r}")
    ssl = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if ssl else 8000), ssl


class ChromaClient:
    """The collections of one Chroma database, embedded or on a server."""

    backend = "chroma"

    def __init__(self, data_dir: Path, url: str | None = None, **unknown: Any) -> None:
        """Connect to Chroma.

        Args:
            data_dir: The server's data directory; embedded Chroma keeps ``data_dir/chroma``.
            url: A Chroma server's URL (``http://host:port``); empty for embedded Chroma.
            **unknown: Refused; present so that a misspelt option is a configuration error.

        Raises:
            BackendUnavailable: the server does not answer.
            ConfigurationError: the URL is malformed or an option is unknown.
        """
        if unknown:
            raise ConfigurationError(f"unknown chroma options: {sorted(unknown)}")
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        self._content: InChroma | BesideChroma = InChroma()
        if url:
            host, port, ssl = _parse_url(url)
            try:
                self._client: Any = chromadb.HttpClient(
                    host=host, port=port, ssl=ssl, settings=settings
                )
            except Exception as exc:
                raise BackendUnavailable(f"Chroma server at {url} is not reachable: {exc}") from exc
        else:
            path = Path(data_dir) / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            self._content = BesideChroma(path)
        self._adopting = threading.Lock()
        self._batch = int(self._client.get_max_batch_size())

    def _store(self, chunks: Any) -> ChromaStore:
        metadata = chunks.metadata or {}
        if "embedding_model" not in metadata or "dimension" not in metadata:
            raise InvalidRequest(f"Chroma collection '{chunks.name}' was not made by ragserver")
        docs = self._client.get_or_create_collection(
            chunks.name + RESERVED_SUFFIX, embedding_function=None
        )
        with self._adopting:
            self._content.adopt(chunks, docs)
        return ChromaStore(chunks, docs, self._batch, self._content)

    def _get(self, name: str) -> Any | None:
        try:
            validate_collection_name(name)
        except InvalidRequest:
            return None
        try:
            with _reachable("get_collection"):
                return self._client.get_collection(name, embedding_function=None)
        except BackendUnavailable:
            raise
        except Exception as exc:
            if _not_found(exc):
                return None
            raise

    def create_collection(self, name: str, embedding_model: str, dimension: int) -> ChromaStore:
        """Create a collection; raises ``CollectionExists`` if it exists."""
        validate_collection_name(name)
        check_dimension(dimension)
        if self._get(name) is not None:
            raise CollectionExists(f"collection '{name}' exists already", {"name": name})
        metadata = {"embedding_model": embedding_model, "dimension": dimension}
        with _reachable("create_collection"):
            try:
                chunks = self._client.create_collection(
                    name,
                    configuration=_COSINE,
                    metadata={
                        **metadata,
                        "created": time.time(),
                        **self._content.collection_metadata(),
                    },
                    embedding_function=None,
                )
            except Exception as exc:
                if "already exists" in str(exc):
                    raise CollectionExists(f"collection '{name}' exists already") from exc
                raise
            return self._store(chunks)

    def get_collection(self, name: str) -> ChromaStore:
        """Open a collection; raises ``CollectionNotFound``."""
        chunks = self._get(name)
        if chunks is None:
            raise CollectionNotFound(f"collection '{name}' does not exist", {"name": name})
        with _reachable("get_collection"):
            return self._store(chunks)

    def get_or_create_collection(
        self, name: str, embedding_model: str, dimension: int
    ) -> ChromaStore:
        """Open a collection, creating it first; ``EmbeddingMismatch`` if it differs."""
        validate_collection_name(name)
        check_dimension(dimension)
        try:
            store = self.get_collection(name)
        except CollectionNotFound:
            try:
                return self.create_collection(name, embedding_model, dimension)
            except CollectionExists:
                store = self.get_collection(name)
        check_embedding(name, store.embedding_model, store.dimension, embedding_model, dimension)
        return store

    def list_collections(self) -> list[CollectionInfo]:
        """Return every ragserver collection, ordered by name."""
        infos: list[CollectionInfo] = []
        with _reachable("list_collections"):
            for chunks in self._client.list_collections():
                md = chunks.metadata or {}
                if chunks.name.endswith(RESERVED_SUFFIX) or "embedding_model" not in md:
                    continue
                store = self._store(chunks)
                infos.append(
                    CollectionInfo(
                        store.name,
                        store.embedding_model,
                        store.dimension,
                        store.count(),
                        store.count_documents(),
                    )
                )
        return sorted(infos, key=lambda i: i.name)

    def delete_collection(self, name: str) -> bool:
        """Delete a collection and its record collection; False if it did not exist."""
        chunks = self._get(name)
        if chunks is None:
            return False
        self._content.forget_collection(str(chunks.id))
        with _reachable("delete_collection"):
            for full in (name, name + RESERVED_SUFFIX):
                try:
                    self._client.delete_collection(full)
                except Exception as exc:
                    if not _not_found(exc):
                        raise
        return True

    def close(self) -> None:
        """Close the text store (chromadb clients hold nothing that needs closing)."""
        self._content.close()
