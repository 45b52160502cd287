"""Checks and helpers every backend shares, so the contract is enforced in one place."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import EmbeddingMismatch, InvalidRequest
from core.types import Chunk, DocumentRecord, Hit, MetadataValue
from vectorstores.base import Vector

#: Names are 3 to 63 characters of letters, digits, ``_`` and ``-``, starting and ending with
#: a letter or digit: safe as a folder name and valid in Chroma.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,61}[A-Za-z0-9]$")
#: Suffix Chroma's companion collections of document records use (see ``chroma_store``).
RESERVED_SUFFIX = "__docs"


def validate_collection_name(name: str) -> str:
    """Return ``name`` if it is a valid collection name on every backend.

    Raises:
        InvalidRequest: the name is not 3-63 characters of ``[A-Za-z0-9_-]`` starting and
            ending with a letter or digit, or ends with the reserved ``__docs``.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidRequest(
            f"invalid collection name {name!r}: use 3-63 characters from [A-Za-z0-9_-], "
            "starting and ending with a letter or digit",
            {"name": str(name)},
        )
    if name.endswith(RESERVED_SUFFIX):
        raise InvalidRequest(
            f"invalid collection name {name!r}: the suffix {RESERVED_SUFFIX!r} is reserved",
            {"name": name},
        )
    return name


def check_dimension(dimension: int) -> int:
    """Return ``dimension`` if it is a positive int, else raise ``InvalidRequest``."""
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
        raise InvalidRequest(f"dimension must be a positive integer, got {dimension!r}")
    return dimension


def clean_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """Return ``metadata`` without ``None`` values, checking that the rest are scalars.

    Raises:
        InvalidRequest: a value is not str, int, float, bool or None, or a key is not a str.
    """
    out: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"metadata keys are non-empty strings; got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise InvalidRequest(
                f"metadata value of {key!r} must be str, int, float or bool; got "
                f"{type(value).__name__}",
                {"key": key},
            )
        out[key] = value
    return out


def clean_chunks(chunks: Sequence[Chunk], document_id: str | None = None) -> list[Chunk]:
    """Check a batch of chunks and return it with cleaned metadata.

    Args:
        chunks: The batch.
        document_id: When given, every chunk must belong to this document.

    Raises:
        InvalidRequest: duplicate or empty ids, a chunk of another document, bad metadata.
    """
    seen: set[str] = set()
    out: list[Chunk] = []
    for chunk in chunks:
        if not chunk.id or not chunk.document_id:
            raise InvalidRequest("chunk id and document_id must be non-empty")
        if chunk.id in seen:
            raise InvalidRequest(f"chunk id {chunk.id!r} appears twice in one batch")
        if document_id is not None and chunk.document_id != document_id:
            raise InvalidRequest(
                f"chunk {chunk.id!r} belongs to document {chunk.document_id!r}, not {document_id!r}"
            )
        seen.add(chunk.id)
        out.append(dataclasses.replace(chunk, metadata=clean_metadata(chunk.metadata)))
    return out


def check_top_k(top_k: int) -> int:
    """Return ``top_k`` if it is a positive int, else raise ``InvalidRequest``."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequest(f"top_k must be a positive integer, got {top_k!r}")
    return top_k


def prepare_query(vector: Vector, dimension: int, collection: str) -> Vector:
    """Return the query as a unit-length float32 row of shape ``(1, dimension)``.

    Raises:
        EmbeddingMismatch: the query has another dimension than the collection.
        InvalidRequest: more than one query vector.
    """
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise InvalidRequest(f"search takes one query vector, got shape {arr.shape}")
    if arr.shape[0] != dimension:
        raise EmbeddingMismatch(
            f"collection '{collection}' holds {dimension}-dimensional vectors; the query has "
            f"{arr.shape[0]}. Embed it with the collection's model.",
            {"expected_dimension": dimension, "got_dimension": int(arr.shape[0])},
        )
    norm = float(np.linalg.norm(arr))
    out = arr / norm if norm > 0 else arr
    return np.ascontiguousarray(out.reshape(1, -1), dtype=np.float32)


def sort_hits(hits: Iterable[Hit], top_k: int, score_threshold: float | None) -> list[Hit]:
    """Order hits by score descending then chunk id, drop those under the threshold, cut."""
    kept = [h for h in hits if score_threshold is None or h.score >= score_threshold]
    kept.sort(key=lambda h: (-h.score, h.chunk.id))
    return kept[:top_k]


def stamp_record(
    record: DocumentRecord, existing: DocumentRecord | None, chunk_count: int
) -> DocumentRecord:
    """Return the record as stored: its chunk count, cleaned metadata and timestamps.

    ``created_at`` keeps the first time the document was stored; ``updated_at`` is the
    record's own value, or now when it has none.
    """
    now = time.time()
    if existing is not None and existing.created_at:
        created = existing.created_at
    else:
        created = record.created_at or now
    return dataclasses.replace(
        record,
        chunk_count=chunk_count,
        metadata=clean_metadata(record.metadata),
        created_at=created,
        updated_at=record.updated_at or now,
    )


def document_filter_view(record: DocumentRecord) -> dict[str, Any]:
    """Return what ``list_documents`` filters see: the metadata, ``source`` and ``document_id``."""
    return {**record.metadata, "source": record.source, "document_id": record.id}


def page(items: list[Any], limit: int | None, offset: int) -> list[Any]:
    """Return ``items[offset:offset + limit]`` after checking the bounds."""
    if offset < 0 or (limit is not None and limit < 0):
        raise InvalidRequest("limit and offset must not be negative")
    return items[offset:] if limit is None else items[offset : offset + limit]


def chunk_order(chunk: Chunk) -> tuple[int, str]:
    """Sort key of chunks within a document: ``metadata["position"]`` if an int, then id."""
    position = chunk.metadata.get("position")
    if isinstance(position, bool) or not isinstance(position, int):
        position = 0
    return (position, chunk.id)
