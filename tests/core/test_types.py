import pytest

from core.types import Chunk, Hit, embedding_text


def make(**metadata: object) -> Chunk:
    return Chunk("doc:00002", "doc", "Body text.", metadata)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "page"),
    [(3, 3), (1, 1), (0, None), (-2, None), (True, None), (2.0, None), ("4", None), (None, None)],
)
def test_page_is_a_positive_int_or_none(value: object, page: int | None) -> None:
    chunk = make() if value is None else make(page=value)
    assert chunk.page == page


def test_accessors_read_metadata_with_defaults() -> None:
    chunk = make(source="a/b.md", heading_path="Guide > Install", position=7)
    assert (chunk.source, chunk.heading_path, chunk.position) == ("a/b.md", "Guide > Install", 7)
    bare = make()
    assert (bare.source, bare.heading_path, bare.position) == ("", "", 0)


def test_embedding_text_puts_the_heading_path_first() -> None:
    assert make(heading_path="Guide > Install").embedding_text == "Guide > Install\nBody text."
    assert embedding_text(make()) == "Body text."


def test_hit_scores_default_to_cosine() -> None:
    assert Hit(make(), 0.5).kind == "cosine"
    assert Hit(make(), 7.0, "bm25").kind == "bm25"
