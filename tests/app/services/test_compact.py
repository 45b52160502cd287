"""The compact prompt for small models: which chunks, renumbered evidence, and the service."""

from __future__ import annotations

import io
from typing import Any

import pytest

from app.services.compact import COMPACT_STOPS, focus_order, renumber, use_compact
from app.services.evidence import Evidence
from app.settings import Settings
from llms.base import GenerationParams
from tests.app.conftest import running_app
from tests.fakes import EchoGenerator, HashEmbedder


def sentence(citation: int, text: str = "x") -> Evidence:
    return Evidence(citation, 0, len(text), text, 1.0, 0.5, 0.5)


def test_focus_keeps_the_evidence_chunks_in_evidence_order_then_the_best_ranked() -> None:
    evidence = [sentence(3), sentence(1), sentence(3)]
    assert focus_order(evidence, available=5, limit=2) == [3, 1]
    assert focus_order(evidence, available=5, limit=3) == [3, 1, 2]
    assert focus_order([], available=4, limit=2) == [1, 2]
    assert focus_order([sentence(9)], available=2, limit=5) == [1, 2]


def test_renumbered_evidence_cites_the_compact_prompt_and_drops_other_chunks() -> None:
    evidence = [sentence(3, "a"), sentence(1, "b"), sentence(4, "c")]
    out = renumber(evidence, [3, 1])
    assert [(e.citation, e.text) for e in out] == [(1, "a"), (2, "b")]


def test_auto_is_compact_only_for_the_bundled_model() -> None:
    assert use_compact("auto", bundled=True)
    assert not use_compact("auto", bundled=False)
    assert use_compact("compact", bundled=False)
    assert not use_compact("full", bundled=True)


class RecordingEcho(EchoGenerator):
    """The echo generator, keeping the generation parameters it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[GenerationParams] = []

    def generate(self, messages: Any, params: Any) -> Any:
        self.params.append(params)
        return super().generate(messages, params)


DOCS = [
    ("vault.txt", b"The vault code is 7421. It opens the north door of the archive."),
    ("garden.md", b"# Garden\n\nTomatoes need six hours of sun. Water them in the morning."),
    ("boat.md", b"# Boat\n\nThe boat leaves at noon. Bring a coat."),
]


def ask(
    settings: Settings, generator: RecordingEcho, profile: str = "compact", **body: Any
) -> dict[str, Any]:
    llm = settings.llm.model_copy(update={"abstain_below": 0.0, "prompt_profile": profile})
    settings = settings.model_copy(update={"llm": llm})
    with running_app(settings, HashEmbedder(), generator) as client:
        files = [("files", (n, io.BytesIO(d))) for n, d in DOCS]
        assert client.post("/v1/collections/default/documents", files=files).status_code == 201
        question = {"question": "What is the vault code?", "top_k": 3, "answer_mode": "generative"}
        resp = client.post("/v1/collections/default/query", json={**question, **body})
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result


def test_a_compact_prompt_holds_the_evidence_chunks_with_short_answer_and_stops(
    settings: Settings,
) -> None:
    generator = RecordingEcho()
    body = ask(settings, generator)
    messages = generator.calls[-1]
    assert "one or two sentences" in messages[0]["content"]
    prompt = messages[-1]["content"]
    assert "[1] The vault code is 7421." in prompt
    assert "<source" not in prompt
    assert len(body["citations"]) == settings.llm.compact_sources == 2
    assert body["citations"][0]["filename"] == "vault.txt"
    assert body["answer"] == "The vault code is 7421. [1]"
    assert body["citations"][0]["cited"]
    params = generator.params[-1]
    assert params.max_new_tokens == settings.llm.compact_max_new_tokens
    assert params.stop == COMPACT_STOPS
    quotes = {c["number"]: c["quote"] for c in body["citations"]}
    for e in body["evidence"]:
        assert quotes[e["citation"]][e["start"] : e["end"]] == e["text"]


def test_a_request_naming_a_strategy_and_length_keeps_them(settings: Settings) -> None:
    generator = RecordingEcho()
    ask(settings, generator, strategy="zero_shot", llm={"max_tokens": 33})
    assert "<source" in generator.calls[-1][-1]["content"]
    assert generator.params[-1].max_new_tokens == 33


@pytest.mark.parametrize("profile", ["full", "auto"])
def test_full_and_auto_with_another_model_keep_the_full_prompt(
    settings: Settings, profile: str
) -> None:
    generator = RecordingEcho()
    body = ask(settings, generator, profile)
    assert len(body["citations"]) == 3
    assert "<source" in generator.calls[-1][-1]["content"]
    assert generator.params[-1].stop == ()
