"""The filter language: validation messages, semantics, and its SQL and Chroma translations."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import FilterError
from core.types import Chunk
from vectorstores.filters import matches, to_chroma_where, to_sql_where, validate_filter
from vectorstores.registry import create_client

MD = {"lang": "en", "page": 3, "score": 1.5, "draft": False}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, True),
        ({}, True),
        ({"lang": "en"}, True),
        ({"lang": {"$eq": "fr"}}, False),
        ({"lang": {"$ne": "fr"}}, True),
        ({"missing": {"$ne": 1}}, True),
        ({"missing": 1}, False),
        ({"page": 3.0}, True),
        ({"draft": 0}, False),
        ({"draft": False}, True),
        ({"page": {"$in": [1, 3]}}, True),
        ({"page": {"$gt": 3}}, False),
        ({"page": {"$gte": 3}}, True),
        ({"score": {"$lt": 2, "$gt": 1}}, True),
        ({"lang": {"$lte": 5}}, False),
        ({"lang": "en", "page": 4}, False),
        ({"$or": [{"page": 4}, {"lang": "en"}]}, True),
        ({"$and": [{"page": 3}, {"$or": [{"draft": True}, {"score": 1.5}]}]}, True),
    ],
)
def test_matches(flt: dict[str, Any] | None, expected: bool) -> None:
    assert matches(flt, MD) is expected


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"a": {"$regex": "x"}}, "unknown operator '$regex' for field 'a'; known operators"),
        ({"$nor": [{"a": 1}]}, "unknown operator '$nor' at this level"),
        ({"$and": []}, "$and takes a non-empty list of filters"),
        ({"$or": {"a": 1}}, "$or takes a non-empty list of filters"),
        ({"a": {"$in": []}}, '"$in" takes a non-empty list'),
        ({"a": {"$in": "abc"}}, '"$in" takes a non-empty list'),
        ({"a": {"$in": [1, "x"]}}, "must all be of one type"),
        ({"a": {"$gt": "x"}}, "$gt compares numbers"),
        ({"a": {"$gte": True}}, "$gte compares numbers"),
        ({"a": [1, 2]}, "expected a str, int, float or bool value"),
        ({"a": None}, "expected a str, int, float or bool value"),
        ({"a": {}}, "empty condition"),
        ({'a"b': 1}, "double quotes"),
        ({"$and": [{"a": {"$foo": 1}}]}, "$and[0].a.$foo"),
        ([("a", 1)], "a filter is a mapping"),
    ],
)
def test_validation_says_what_to_fix(flt: Any, message: str) -> None:
    with pytest.raises(FilterError) as info:
        validate_filter(flt)
    assert message in info.value.message


def test_to_chroma_where() -> None:
    assert to_chroma_where(None) is None
    assert to_chroma_where({}) is None
    assert to_chroma_where({"a": "x"}) == {"a": {"$eq": "x"}}
    assert to_chroma_where({"a": 1, "b": {"$gte": 2, "$lt": 5}}) == {
        "$and": [{"a": {"$eq": 1.0}}, {"b": {"$gte": 2.0}}, {"b": {"$lt": 5.0}}]
    }
    assert to_chroma_where({"$or": [{"a": True}]}) == {"a": {"$eq": True}}
    assert to_chroma_where({"a": {"$in": [1, 2.5]}}) == {"a": {"$in": [1.0, 2.5]}}
    assert to_chroma_where({"$or": [{"a": 1, "b": "x"}, {"c": {"$ne": "y"}}]}) == {
        "$or": [{"$and": [{"a": {"$eq": 1.0}}, {"b": {"$eq": "x"}}]}, {"c": {"$ne": "y"}}]
    }
    with pytest.raises(FilterError):
        to_chroma_where({"a": {"$in": []}})


# -- the SQL translation agrees with ``matches`` on arbitrary filters and metadata ------------

KEYS = ["a", "b", "c"]
scalars = st.one_of(
    st.sampled_from(["x", "y", "1", ""]),
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, 0.5, 1.0, 2.5]),
    st.booleans(),
)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.5, 1.0, 2.5]))
in_lists = st.one_of(
    st.lists(st.sampled_from(["x", "y", "1"]), min_size=1, max_size=3),
    st.lists(numbers, min_size=1, max_size=3),
    st.lists(st.booleans(), min_size=1, max_size=2),
)
conditions = st.one_of(
    scalars,
    st.fixed_dictionaries({"$eq": scalars}),
    st.fixed_dictionaries({"$ne": scalars}),
    st.fixed_dictionaries({"$in": in_lists}),
    st.fixed_dictionaries({}, optional={"$gt": numbers, "$lte": numbers}).filter(bool),
    st.fixed_dictionaries({}, optional={"$gte": numbers, "$lt": numbers}).filter(bool),
)
leaf = st.dictionaries(st.sampled_from(KEYS), conditions, min_size=1, max_size=2)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
metadatas = st.lists(st.dictionaries(st.sampled_from(KEYS), scalars), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(flt=filters, rows=metadatas)
def test_sql_translation_agrees_with_matches(
    flt: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (i INTEGER, md TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, json.dumps(r)) for i, r in enumerate(rows)])
    sql, params = to_sql_where(flt, "md")
    got = [i for (i,) in db.execute(f"SELECT i FROM t WHERE {sql} ORDER BY i", params)]
    assert got == [i for i, r in enumerate(rows) if matches(flt, r)]


@pytest.mark.parametrize("backend", ["memory", "faiss", "chroma"])
def test_backends_agree_with_matches(tmp_path: Path, backend: str) -> None:
    """Every backend returns exactly the chunks ``matches`` accepts, for arbitrary filters."""
    rows = [
        {k: v for k, v in zip(KEYS, values, strict=True) if v is not None}
        for values in itertools.product(
            [None, "x", "1", 1, True], [None, 0, 2, 0.5, -1.5, 2.5, False], [None, "y", 1.0]
        )
    ]
    client = create_client(backend, tmp_path, {})
    store = client.create_collection("agree", "m", 4)
    chunks = [Chunk(f"c{i:03d}", "d", "t", md) for i, md in enumerate(rows)]
    store.upsert(chunks, np.random.default_rng(0).standard_normal((len(rows), 4)))
    query = np.ones(4, dtype=np.float32)

    @settings(max_examples=60, deadline=None)
    @given(flt=filters)
    def check(flt: dict[str, Any]) -> None:
        got = sorted(h.chunk.id for h in store.search(query, top_k=len(rows), filter=flt))
        assert got == [c.id for c, md in zip(chunks, rows, strict=True) if matches(flt, md)]

    try:
        check()
    finally:
        client.close()
