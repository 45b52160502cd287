"""Token-aware, structure-aware chunking.

Sizes are counted in tokens of the embedding model's own tokenizer, and ``chunk_size`` bounds
what the model actually sees: ``embedding_text(chunk)`` (heading path, newline, text) plus the
model's special tokens. A chunk size no larger than the model's ``max_seq_length`` therefore
means the embedder never truncates.

Each ``Section`` is chunked on its own, so chunks never span headings or pages. Within a
section, a chunk ends at the strongest boundary in the second half of its budget: a paragraph
break, else a sentence end, else a line break, else a space, else any token boundary.
Consecutive chunks of a section share up to ``chunk_overlap`` tokens: the next chunk starts at
the first word boundary within the last ``chunk_overlap`` tokens of the previous one (the
overlap is capped at half the room the heading path leaves for text). A heading path longer
than a quarter of the chunk is cut, and the cut path is what the chunk's metadata records.

Chunk metadata (every value a str, int, float or bool):

* ``source``, ``document_id``, ``position`` (0-based, across the document), ``section``
  (index of the section in ``LoadedDocument.sections``);
* ``heading_path``: the headings joined with ``" > "``, ``""`` when there are none;
* ``page``: the 1-based page for paged formats (PDF); the key is absent otherwise, never
  ``None`` or a sentinel;
* ``start``, ``end``: character offsets into the text of the chunk's *section*, so
  ``document.sections[section].text[start:end] == chunk.text``, except for tables;
* ``table``: ``True`` on a chunk of a table section (``Section.table_header``). A table is cut
  between rows only (a row longer than a chunk is the one exception), and every chunk of it
  is the table's markdown header, a newline, then whole rows (``section_text[start:end]``).
  Chunks of a table do not overlap;
* ``ocr``, ``ocr_confidence``: ``True`` and the page's mean word confidence (0 to 100) on
  text read by OCR; absent otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import InvalidRequest
from core.types import Chunk, MetadataValue
from ingest.base import ChunkTokenizer, LoadedDocument, Section, Span

HEADING_SEPARATOR = " > "
RESERVED_METADATA = frozenset(
    {
        "source",
        "document_id",
        "position",
        "section",
        "heading_path",
        "page",
        "start",
        "end",
        "table",
        "ocr",
        "ocr_confidence",
    }
)
"""Chunk metadata keys set by ingestion; user metadata cannot override them."""

_SENTENCE_END = re.compile(r"[.!?…。][\"'”’)\]»]*$")
_CLOSERS = "\"'”’)]»"
_MAX_RESPLITS = 8


class HFChunkTokenizer:
    """Adapts a Hugging Face fast tokenizer: one batched Rust call per list of texts.

    It works on its own copy of the Rust tokenizer, with truncation and padding off, so the
    truncation settings an embedding call leaves behind never cut what chunking measures.
    """

    def __init__(self, tokenizer: Any) -> None:
        """Wrap ``tokenizer`` (a ``PreTrainedTokenizerFast``).

        Raises:
            InvalidRequest: the tokenizer is a slow one, which has no offsets.
        """
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise InvalidRequest("chunking needs a fast tokenizer (one with offset mappings)")
        from tokenizers import Tokenizer

        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self.special_tokens = int(tokenizer.num_special_tokens_to_add(pair=False))

    def token_spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Return the character span of each token of each text."""
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)
        return [[(int(s), int(e)) for s, e in enc.offsets] for enc in encodings]


def document_id_for(source: str) -> str:
    """Return the document id of a source name: the first 16 hex digits of its sha256."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def heading_text(heading_path: Sequence[str]) -> str:
    """Join a heading path the way chunk metadata stores it (``"json > Basic Usage"``)."""
    return HEADING_SEPARATOR.join(heading_path)


def _boundaries(text: str, spans: Sequence[Span]) -> list[int]:
    """Strength of the boundary before each token (index ``i``), and at the end (``n``)."""
    strengths = [5] * (len(spans) + 1)
    for i in range(1, len(spans)):
        end, start = spans[i - 1][1], spans[i][0]
        gap = text[end:start]
        if "\n\n" in gap:
            strengths[i] = 4
        elif gap and _SENTENCE_END.search(text[max(0, end - 4) : end]):
            strengths[i] = 3
        elif "\n" in gap:
            strengths[i] = 2
        elif gap:
            strengths[i] = 1
        else:
            strengths[i] = 0
    return strengths


def split_spans(text: str, spans: Sequence[Span], budget: int, overlap: int) -> list[Span]:
    """Cut a tokenised text into chunks of at most ``budget`` tokens.

    Args:
        text: The text.
        spans: Its token spans, as ``ChunkTokenizer.token_spans`` returns them.
        budget: Most tokens per chunk (at least 1).
        overlap: Most tokens shared by consecutive chunks (less than ``budget``).

    Returns:
        Character spans ``(start, end)`` of the chunks into ``text``, in order.
    """
    n = len(spans)
    if n == 0:
        return []
    budget = max(1, budget)
    overlap = max(0, min(overlap, budget - 1))
    strengths = _boundaries(text, spans)
    out: list[Span] = []
    start, previous_end = 0, 0
    while True:
        if n - start <= budget:
            end = n
        else:
            high = start + budget
            low = min(high, max(start + budget // 2, previous_end + 1, start + 1))
            end = max(range(low, high + 1), key=lambda i: (strengths[i], i))
        out.append((spans[start][0], spans[end - 1][1]))
        if end >= n:
            return out
        following = end
        for i in range(max(start + 1, end - overlap), end):
            if strengths[i] >= 1:
                following = i
                break
        start, previous_end = following, end


def split_text(text: str, tokenizer: ChunkTokenizer, budget: int, overlap: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``budget`` tokens (special tokens not counted)."""
    spans = tokenizer.token_spans([text])[0]
    return [text[s:e] for s, e in split_spans(text, spans, budget, overlap)]


def check_chunk_size(chunk_size: int, chunk_overlap: int, max_tokens: int) -> None:
    """Validate a chunk size and overlap against the embedding model's maximum.

    Raises:
        InvalidRequest: ``chunk_overlap`` is negative, or ``chunk_size`` is not in
            ``(chunk_overlap, max_tokens]``.
    """
    if chunk_overlap < 0 or not chunk_overlap < chunk_size <= max_tokens:
        raise InvalidRequest(
            f"chunk_size must be greater than chunk_overlap ({chunk_overlap}) and at most "
            f"{max_tokens} (the embedding model's max_seq_length), and chunk_overlap at least 0; "
            f"got chunk_size={chunk_size}, chunk_overlap={chunk_overlap}",
            {
                "chunk_size": chunk_size,
                "chunk_overlap": chunk_overlap,
                "allowed": [chunk_overlap + 1, max_tokens],
            },
        )


def _heading_room(section: Section, tokenizer: ChunkTokenizer, chunk_size: int) -> tuple[str, int]:
    """Return the section's heading text (cut if very long) and the tokens left for text."""
    heading = heading_text(section.heading_path)
    room = chunk_size - tokenizer.special_tokens
    if heading:
        heading_spans = tokenizer.token_spans([heading])[0]
        cap = max(1, room // 4)
        if len(heading_spans) > cap:
            heading = heading[: heading_spans[cap - 1][1]]
        room -= min(len(heading_spans), cap)
    return heading, room


def _section_pieces(
    section: Section,
    spans: list[Span],
    tokenizer: ChunkTokenizer,
    chunk_size: int,
    chunk_overlap: int,
) -> tuple[str, list[Span]]:
    """Return the section's heading text (cut if very long) and its chunk spans."""
    heading, room = _heading_room(section, tokenizer, chunk_size)
    budget = max(1, room)
    overlap = min(chunk_overlap, budget // 2)
    pieces = split_spans(section.text, spans, budget, overlap)
    for _ in range(_MAX_RESPLITS):
        # Tokenising the joined text can differ from the parts' sum by a token or two.
        texts = [
            f"{heading}\n{section.text[s:e]}" if heading else section.text[s:e] for s, e in pieces
        ]
        excess = max(
            len(t) + tokenizer.special_tokens - chunk_size for t in tokenizer.token_spans(texts)
        )
        if excess <= 0:
            break
        budget = max(1, budget - excess)
        pieces = split_spans(section.text, spans, budget, min(overlap, budget // 2))
    return heading, pieces


def _pack_rows(
    text: str, rows: Sequence[Span], row_tokens: Sequence[list[Span]], room: int
) -> list[Span]:
    """Group whole rows into spans of at most ``room`` tokens; a longer row is split alone."""
    pieces: list[Span] = []
    start: int | None = None
    used = last_end = 0
    for (row_start, row_end), tokens in zip(rows, row_tokens, strict=True):
        if start is not None and (used + len(tokens) > room or len(tokens) > room):
            pieces.append((start, last_end))
            start, used = None, 0
        if len(tokens) > room:
            shifted = [(row_start + a, row_start + b) for a, b in tokens]
            pieces.extend(split_spans(text, shifted, room, 0))
            continue
        if start is None:
            start = row_start
        used, last_end = used + len(tokens), row_end
    if start is not None:
        pieces.append((start, last_end))
    return pieces


def _table_pieces(
    section: Section, header: str, tokenizer: ChunkTokenizer, chunk_size: int
) -> tuple[str, list[Span]] | None:
    """Return the heading text and row spans of a table section, each chunk its header first.

    None when the header leaves less than a quarter of the chunk for rows (the table is then
    chunked as text).
    """
    heading, room = _heading_room(section, tokenizer, chunk_size)
    room -= len(tokenizer.token_spans([header])[0])
    rows: list[Span] = []
    position = len(header) + 1
    for line in section.text[position:].split("\n"):
        rows.append((position, position + len(line)))
        position += len(line) + 1
    row_tokens = tokenizer.token_spans([section.text[a:b] for a, b in rows])
    for _ in range(_MAX_RESPLITS):
        if room < chunk_size // 4 or room < 1:
            return None
        pieces = _pack_rows(section.text, rows, row_tokens, room)
        texts = ["\n".join(p for p in (heading, header, section.text[a:b]) if p) for a, b in pieces]
        excess = max(
            len(t) + tokenizer.special_tokens - chunk_size for t in tokenizer.token_spans(texts)
        )
        if excess <= 0:
            return heading, pieces
        room -= excess
    return None


def _chunk_metadata(section: Section, is_table: bool) -> dict[str, MetadataValue]:
    """Metadata a section gives each of its chunks besides the position keys."""
    meta: dict[str, MetadataValue] = {}
    if section.page is not None:
        meta["page"] = section.page
    if is_table:
        meta["table"] = True
    if section.ocr_confidence is not None:
        meta["ocr"] = True
        meta["ocr_confidence"] = section.ocr_confidence
    return meta


def chunk_document(
    document: LoadedDocument,
    document_id: str,
    tokenizer: ChunkTokenizer,
    *,
    chunk_size: int,
    chunk_overlap: int,
    metadata: Mapping[str, MetadataValue] | None = None,
) -> list[Chunk]:
    """Cut a loaded document into chunks (see the module docstring for the rules).

    Args:
        document: The loaded document.
        document_id: Its id (``document_id_for(document.source)``).
        tokenizer: The embedding model's tokenizer.
        chunk_size: Most tokens of ``embedding_text(chunk)``, special tokens included.
        chunk_overlap: Most tokens shared by consecutive chunks of a section.
        metadata: User metadata copied onto every chunk; reserved keys are ignored.

    Returns:
        The chunks, positions numbered from 0 across the document.
    """
    extra = {k: v for k, v in (metadata or {}).items() if k not in RESERVED_METADATA}
    all_spans = tokenizer.token_spans([section.text for section in document.sections])
    chunks: list[Chunk] = []
    for index, (section, spans) in enumerate(zip(document.sections, all_spans, strict=True)):
        table = None
        if section.table_header:
            table = _table_pieces(section, section.table_header, tokenizer, chunk_size)
        if table is not None:
            heading, pieces = table
            prefix = f"{section.table_header}\n"
        else:
            heading, pieces = _section_pieces(section, spans, tokenizer, chunk_size, chunk_overlap)
            prefix = ""
        section_meta = _chunk_metadata(section, table is not None)
        for start, end in pieces:
            position = len(chunks)
            meta: dict[str, MetadataValue] = {
                **extra,
                "source": document.source,
                "document_id": document_id,
                "position": position,
                "section": index,
                "heading_path": heading,
                "start": start,
                "end": end,
                **section_meta,
            }
            chunks.append(
                Chunk(
                    id=f"{document_id}:{position:05d}",
                    document_id=document_id,
                    text=prefix + section.text[start:end],
                    metadata=meta,
                )
            )
    return chunks
