"""The LangChain retriever over the live ragserver: right page first, LCEL, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from ragserver_client.langchain import RagServerRetriever

from tests.clients.conftest import COLLECTION, HEAP_QUESTION
from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration

JSON_QUESTION = "How can I serialize a Python object to a JSON formatted string?"
CANNED = "Use heapq.heappush(heap, item) [1]."


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call was given."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.extend(messages)


def check_documents(docs: list[Document], source: str) -> None:
    assert docs[0].metadata["source"] == source
    for doc in docs:
        assert set(doc.metadata) == {
            "chunk_id", "document_id", "source", "page", "heading_path", "score",
        }  # fmt: skip
        assert doc.id == doc.metadata["chunk_id"]
        assert doc.page_content
    scores = [doc.metadata["score"] for doc in docs]
    assert scores == sorted(scores, reverse=True)


def test_retriever_returns_the_right_page_first(live_server: LiveServer) -> None:
    retriever = RagServerRetriever(base_url=live_server.url, collection=COLLECTION, top_k=3)
    docs = retriever.invoke(HEAP_QUESTION)
    assert len(docs) == 3
    check_documents(docs, "heapq.html")
    assert "heappush" in docs[0].page_content
    dense = RagServerRetriever(
        base_url=live_server.url, collection=COLLECTION, top_k=2, mode="dense",
        filter={"source": {"$in": ["json.html", "bisect.html"]}},
    )  # fmt: skip
    json_docs = dense.invoke(JSON_QUESTION)
    check_documents(json_docs, "json.html")
    assert {d.metadata["source"] for d in json_docs} <= {"json.html", "bisect.html"}


def test_retriever_async_matches_sync(live_server: LiveServer) -> None:
    retriever = RagServerRetriever(base_url=live_server.url, collection=COLLECTION, top_k=3)
    docs = asyncio.run(retriever.ainvoke(HEAP_QUESTION))
    check_documents(docs, "heapq.html")
    assert [d.id for d in docs] == [d.id for d in retriever.invoke(HEAP_QUESTION)]


def test_retriever_in_an_lcel_chain_with_a_fake_chat_model(live_server: LiveServer) -> None:
    retriever = RagServerRetriever(base_url=live_server.url, collection=COLLECTION, top_k=2)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from these sources:\n\n{context}"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=[CANNED])

    def join(docs: list[Document]) -> str:
        return "\n\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)

    chain = (
        {"context": retriever | join, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    assert chain.invoke(HEAP_QUESTION, config={"callbacks": [recorder]}) == CANNED
    answer = asyncio.run(chain.ainvoke(HEAP_QUESTION, config={"callbacks": [recorder]}))
    assert answer == CANNED
    assert len(recorder.prompts) == 2
    for messages in recorder.prompts:
        system, human = messages
        assert system.content.startswith("Answer from these sources:\n\n[heapq.html]")
        assert "heappush" in str(system.content)
        assert human.content == HEAP_QUESTION
