"""The LlamaIndex retriever over the live ragserver, alone and in a RetrieverQueryEngine."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, TextNode
from ragserver_client.llama_index import RagServerRetriever

from tests.clients.conftest import COLLECTION, HEAP_QUESTION
from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration


def check_nodes(nodes: list[NodeWithScore], source: str) -> None:
    assert nodes[0].node.metadata["source"] == source
    for item in nodes:
        assert isinstance(item.node, TextNode)
        assert set(item.node.metadata) == {
            "chunk_id", "document_id", "source", "page", "heading_path", "score",
        }  # fmt: skip
        assert item.node.node_id == item.node.metadata["chunk_id"]
        assert item.score == item.node.metadata["score"]
    scores = [item.score or 0.0 for item in nodes]
    assert scores == sorted(scores, reverse=True)


def test_retriever_sync_and_async(live_server: LiveServer) -> None:
    retriever = RagServerRetriever(live_server.url, collection=COLLECTION, top_k=3)
    nodes = retriever.retrieve(HEAP_QUESTION)
    assert len(nodes) == 3
    check_nodes(nodes, "heapq.html")
    assert "heappush" in nodes[0].node.get_content()
    again = asyncio.run(retriever.aretrieve(HEAP_QUESTION))
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]
    bm25 = RagServerRetriever(
        live_server.url, collection=COLLECTION, top_k=2, mode="bm25",
        filter={"source": "venv.html"},
    )  # fmt: skip
    only_venv = bm25.retrieve("create a virtual environment")
    assert {n.node.metadata["source"] for n in only_venv} == {"venv.html"}


def test_query_engine_with_mock_llm(live_server: LiveServer) -> None:
    retriever = RagServerRetriever(live_server.url, collection=COLLECTION, top_k=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(HEAP_QUESTION)
    check_nodes(response.source_nodes, "heapq.html")
    # MockLLM answers with the prompt it was given: the retrieved chunks and the question.
    text = str(response)
    assert response.source_nodes[0].node.get_content()[:200] in text
    assert HEAP_QUESTION in text
    async_response = asyncio.run(engine.aquery(HEAP_QUESTION))
    assert [n.node.node_id for n in async_response.source_nodes] == [
        n.node.node_id for n in response.source_nodes
    ]
