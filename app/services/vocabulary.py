"""One metadata vocabulary: the names a hit shows are the names a filter takes.

Every chunk carries the built-in keys below plus the user metadata of its document. Hits
used to name the source ``filename``, so a filter on ``filename`` is read as one on ``source``
(the deprecated alias keeps old clients working). A filter naming a key that no chunk of the
collection has cannot match anything; search says so in a warning instead of answering an
unexplained empty list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ingest.chunking import RESERVED_METADATA
from vectorstores.base import Filter, VectorStore

BUILTIN_KEYS: dict[str, str] = {
    "source": "the file name, or its path relative to the folder ingested (a/README.md)",
    "document_id": "the document's id, derived from its source",
    "page": "the page number (PDF), absent where the format has no pages",
    "heading_path": "the headings above the chunk, joined with ' > '",
}
FILTER_ALIASES = {"filename": "source"}
_LOGICAL = ("$and", "$or")
_PAGE = 1000


def normalize_filter(filter: Filter | None) -> Filter | None:
    """Rename alias keys (``filename``) to their built-in names, at every nesting level."""
    if not filter:
        return filter
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if key in _LOGICAL and isinstance(value, list):
            out[key] = [normalize_filter(f) if isinstance(f, Mapping) else f for f in value]
        else:
            out[FILTER_ALIASES.get(key, key)] = value
    return out


def filter_fields(filter: Filter) -> Iterator[str]:
    """The metadata field names a filter tests, at every nesting level."""
    for key, value in filter.items():
        if key in _LOGICAL and isinstance(value, list):
            for sub in value:
                if isinstance(sub, Mapping):
                    yield from filter_fields(sub)
        elif not key.startswith("$"):
            yield key


def known_keys(store: VectorStore) -> set[str]:
    """Every metadata key a chunk of the collection can have: built-in ones and documents'."""
    keys = set(RESERVED_METADATA)
    offset = 0
    while True:
        records = store.list_documents(limit=_PAGE, offset=offset)
        for record in records:
            keys.update(record.metadata)
        if len(records) < _PAGE:
            return keys
        offset += _PAGE


def unknown_key_warnings(store: VectorStore, filter: Filter) -> list[str]:
    """A warning for each filter field no chunk of the collection has (so nothing can match)."""
    fields = sorted(set(filter_fields(filter)))
    if not fields:
        return []
    keys = known_keys(store)
    return [
        f"filter key '{name}' is on no chunk of this collection, so it matches nothing; "
        f"keys here: {', '.join(sorted(keys - {'start', 'end', 'section'}))}"
        for name in fields
        if name not in keys
    ]
