from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidRequest
from core.types import embedding_text
from ingest.base import LoadedDocument, Section, WhitespaceTokenizer
from ingest.chunking import (
    check_chunk_size,
    chunk_document,
    document_id_for,
    split_spans,
    split_text,
)
from ingest.limits import LoadLimits
from ingest.loaders import load_bytes, load_file
from tests.ingest.files import HTML_DIR, LOREM, make_pdf

WORDS = WhitespaceTokenizer(special_tokens=2)


def words(text: str) -> int:
    return len(text.split())


def test_document_id_is_sha256_prefix() -> None:
    assert document_id_for("a.txt") == hashlib.sha256(b"a.txt").hexdigest()[:16]
    assert len(document_id_for("x")) == 16


def test_short_section_is_one_chunk_with_metadata() -> None:
    doc = LoadedDocument("k.pdf", "pdf", [Section("Hello kites.", 3, ("Manual", "Intro"))])
    [chunk] = chunk_document(doc, "doc1", WORDS, chunk_size=50, chunk_overlap=5)
    assert chunk.id == "doc1:00000"
    assert chunk.document_id == "doc1"
    assert chunk.text == "Hello kites."
    assert chunk.metadata == {
        "source": "k.pdf",
        "document_id": "doc1",
        "position": 0,
        "section": 0,
        "heading_path": "Manual > Intro",
        "page": 3,
        "start": 0,
        "end": 12,
    }
    assert embedding_text(chunk) == "Manual > Intro\nHello kites."


def test_no_page_key_without_pages_and_no_prefix_without_headings() -> None:
    doc = LoadedDocument("a.txt", "txt", [Section("plain")])
    [chunk] = chunk_document(doc, "d", WORDS, chunk_size=50, chunk_overlap=5)
    assert "page" not in chunk.metadata
    assert chunk.metadata["heading_path"] == ""
    assert embedding_text(chunk) == "plain"
    assert all(v is not None for v in chunk.metadata.values())


def test_sections_never_merge_and_positions_run_across_document() -> None:
    doc = LoadedDocument(
        "a.md",
        "md",
        [Section("one two", heading_path=("A",)), Section("three four", heading_path=("B",))],
    )
    chunks = chunk_document(doc, "d", WORDS, chunk_size=50, chunk_overlap=5)
    assert [(c.id, c.text, c.metadata["section"]) for c in chunks] == [
        ("d:00000", "one two", 0),
        ("d:00001", "three four", 1),
    ]


def test_paragraph_boundaries_are_preferred() -> None:
    para = " ".join(f"w{i}" for i in range(30)) + "."
    text = "\n\n".join([para, para, para])
    pieces = split_text(text, WORDS, budget=70, overlap=0)
    assert pieces == [f"{para}\n\n{para}", para]


def test_sentence_boundaries_when_paragraph_too_long() -> None:
    sentences = [" ".join(["word"] * 9) + f" end{i}." for i in range(10)]
    text = " ".join(sentences)
    pieces = split_text(text, WORDS, budget=25, overlap=0)
    assert all(p.endswith(".") for p in pieces[:-1])
    assert all(words(p) <= 25 for p in pieces)
    assert " ".join(pieces) == text


def test_overlap_is_shared_between_consecutive_chunks() -> None:
    text = " ".join(f"t{i}" for i in range(100))
    pieces = split_text(text, WORDS, budget=20, overlap=5)
    for first, second in zip(pieces, pieces[1:], strict=False):
        shared = set(first.split()) & set(second.split())
        assert len(shared) == 5
        assert first.split()[-5:] == second.split()[:5]


def test_user_metadata_is_copied_but_cannot_override_reserved() -> None:
    doc = LoadedDocument("a.txt", "txt", [Section("text")])
    [chunk] = chunk_document(
        doc, "d", WORDS, chunk_size=50, chunk_overlap=0, metadata={"team": "red", "source": "x"}
    )
    assert chunk.metadata["team"] == "red"
    assert chunk.metadata["source"] == "a.txt"


def test_very_long_heading_path_is_cut_to_leave_room() -> None:
    heading = tuple(f"heading{i}" for i in range(200))
    doc = LoadedDocument("a.md", "md", [Section(" ".join(["x"] * 100), heading_path=heading)])
    chunks = chunk_document(doc, "d", WORDS, chunk_size=40, chunk_overlap=5)
    for chunk in chunks:
        assert words(embedding_text(chunk)) + 2 <= 40
        assert chunk.text.strip()


@pytest.mark.parametrize(("size", "overlap"), [(10, 10), (300, 10), (0, 0), (50, -1)])
def test_chunk_size_validation_says_the_range(size: int, overlap: int) -> None:
    with pytest.raises(InvalidRequest, match="at most 256") as info:
        check_chunk_size(size, overlap, 256)
    assert info.value.detail["allowed"] == [overlap + 1, 256]


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["a", "b", " ", ".", "\n", "xyz", "Q!", "\n\n"]), max_size=300
    ).map("".join),
    budget=st.integers(1, 40),
    overlap=st.integers(0, 39),
)
def test_split_properties(text: str, budget: int, overlap: int) -> None:
    spans = WORDS.token_spans([text])[0]
    pieces = split_spans(text, spans, budget, overlap)
    if not spans:
        assert pieces == []
        return
    assert pieces[0][0] == spans[0][0]
    assert pieces[-1][1] == spans[-1][1]
    for (s1, e1), (s2, e2) in zip(pieces, pieces[1:], strict=False):
        assert s2 > s1
        assert e2 > e1
        if s2 > e1:  # no overlap: only whitespace may fall between chunks
            assert text[e1:s2].strip() == ""
        else:  # overlap: at most `overlap` tokens of the previous chunk
            assert words(text[s2:e1]) <= overlap
    for start, end in pieces:
        assert 1 <= words(text[start:end]) <= budget


# -- the real tokenizer -------------------------------------------------------------------


def real_pdf_document(limits: LoadLimits) -> LoadedDocument:
    pages = [f"Page {n}. " + LOREM * (2 + n % 4) for n in range(1, 9)]
    return load_bytes(make_pdf(pages), "heaps.pdf", limits)


@pytest.mark.integration
@pytest.mark.parametrize(("chunk_size", "overlap"), [(200, 30), (256, 50), (64, 16)])
def test_no_chunk_exceeds_the_model_window(
    real_embedder: Any, limits: LoadLimits, chunk_size: int, overlap: int
) -> None:
    tokenizer = real_embedder.tokenizer
    documents = [load_file(p, p.name, limits) for p in sorted(HTML_DIR.glob("*.html"))]
    documents.append(real_pdf_document(limits))
    total = 0
    for doc in documents:
        chunks = chunk_document(
            doc,
            document_id_for(doc.source),
            real_embedder.chunk_tokenizer,
            chunk_size=chunk_size,
            chunk_overlap=overlap,
        )
        texts = [embedding_text(c) for c in chunks]
        lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
        assert max(lengths) <= chunk_size <= real_embedder.max_seq_length
        assert max(lengths) >= chunk_size * 0.6  # chunks are not needlessly small
        for chunk in chunks:
            section = doc.sections[int(chunk.metadata["section"])]
            start, end = int(chunk.metadata["start"]), int(chunk.metadata["end"])
            if chunk.metadata.get("table"):  # the header row, then whole rows of the table
                assert section.table_header is not None
                assert chunk.text == f"{section.table_header}\n{section.text[start:end]}"
            else:
                assert section.text[start:end] == chunk.text
        total += len(chunks)
    assert total > 50


@pytest.mark.integration
def test_real_html_heading_paths_in_chunks(real_embedder: Any, limits: LoadLimits) -> None:
    doc = load_file(HTML_DIR / "json.html", "json.html", limits)
    chunks = chunk_document(
        doc, "j", real_embedder.chunk_tokenizer, chunk_size=200, chunk_overlap=30
    )
    basic = [c for c in chunks if "Basic Usage" in str(c.metadata["heading_path"])]
    assert basic
    assert basic[0].metadata["heading_path"] == "json — JSON encoder and decoder > Basic Usage"
    assert embedding_text(basic[0]).startswith("json — JSON encoder and decoder > Basic Usage\n")
    assert any("json.dump(" in c.text for c in basic)


@pytest.mark.integration
def test_real_pdf_chunks_carry_page_numbers(real_embedder: Any, limits: LoadLimits) -> None:
    doc = real_pdf_document(limits)
    chunks = chunk_document(
        doc, "p", real_embedder.chunk_tokenizer, chunk_size=200, chunk_overlap=30
    )
    pages = sorted({int(c.metadata["page"]) for c in chunks})
    assert pages == list(range(1, 9))
    for chunk in chunks:
        assert chunk.text in doc.sections[int(chunk.metadata["page"]) - 1].text


def test_heading_path_tokens_count_against_size(tmp_path: Path) -> None:
    body = " ".join(["w"] * 100)
    plain = LoadedDocument("a", "txt", [Section(body)])
    headed = LoadedDocument("a", "txt", [Section(body, heading_path=("h1 h2 h3 h4 h5",))])
    n_plain = len(chunk_document(plain, "d", WORDS, chunk_size=30, chunk_overlap=0))
    n_headed = len(chunk_document(headed, "d", WORDS, chunk_size=30, chunk_overlap=0))
    assert n_headed > n_plain
