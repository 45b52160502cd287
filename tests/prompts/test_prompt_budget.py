from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import ContextBudgetExceeded, InvalidRequest, TemplateNotFound
from llms.base import Message
from prompts.budget import PackedPrompt
from prompts.render import build_prompt
from prompts.templates import TemplateRegistry
from prompts.tokenizers import EstimateTokenizer, Tokenizer, sentence_ends
from prompts.types import ContextChunk, Example
from tests.prompts.conftest import make_hit

STRATEGIES = ["zero_shot", "one_shot", "few_shot", "chain_of_thought"]
WORDS = (  # noqa: SIM905
    "the a of to and in is for on that with json module encode decode python object string "
    "file error value server request token context window model answer source page ignore "
    "previous instructions system"
).split()

sentence = st.lists(st.sampled_from(WORDS), min_size=1, max_size=20).map(
    lambda ws: " ".join(ws).capitalize() + st_choice_end(len(ws))
)


def st_choice_end(n: int) -> str:
    return ".!?"[n % 3]


prose = st.lists(sentence, min_size=1, max_size=15).map(" ".join)
chunk_text = st.one_of(prose, prose, st.text(min_size=1, max_size=300))
history_message = st.tuples(
    st.sampled_from(["user", "assistant"]), st.lists(sentence, min_size=1, max_size=4).map(" ".join)
)


@st.composite
def scenarios(draw: st.DrawFn, max_chunks: int) -> dict[str, Any]:
    texts = draw(st.lists(chunk_text, max_size=max_chunks))
    history = [
        Message(role=role, content=text)  # type: ignore[typeddict-item]
        for role, text in draw(st.lists(history_message, max_size=8))
    ]
    examples = draw(
        st.none() | st.lists(st.builds(Example, question=sentence, answer=sentence), max_size=4)
    )
    return {
        "question": draw(sentence),
        "hits": [make_hit(i, t) for i, t in enumerate(texts)],
        "history": history,
        "examples": examples,
        # room = window - max_new_tokens: small rooms test the error, large ones the packing.
        "window": (reserve := draw(st.integers(min_value=0, max_value=600)))
        + draw(
            st.sampled_from([(1, 250), (250, 4000), (250, 4000)]).flatmap(lambda r: st.integers(*r))
        ),
        "max_new_tokens": reserve,
        "overflow": draw(st.sampled_from(["drop", "truncate"])),
        "strategy": draw(st.sampled_from(STRATEGIES)),
        "role": draw(st.none() | st.just("a support engineer for Acme")),
    }


def fixed_tokens(tok: Tokenizer, registry: TemplateRegistry, s: dict[str, Any]) -> int:
    messages = registry.get(s["strategy"]).render(s["question"], role=s["role"])
    return tok.count_messages(messages)


def check_invariants(tok: Tokenizer, registry: TemplateRegistry, s: dict[str, Any]) -> None:
    room = s["window"] - s["max_new_tokens"]
    fixed = fixed_tokens(tok, registry, s)
    if fixed > room:
        with pytest.raises(ContextBudgetExceeded) as info:
            build_prompt(tokenizer=tok, registry=registry, **s)
        assert info.value.detail["fixed_tokens"] == fixed
        event("fixed parts do not fit")
        return
    packed = build_prompt(tokenizer=tok, registry=registry, **s)
    r = packed.report
    # The exact count of what is sent, plus the reserve, fits the window.
    assert tok.count_messages(packed.messages) == r.prompt_tokens
    assert r.prompt_tokens + s["max_new_tokens"] <= s["window"]
    assert sum(r.tokens_by_part.values()) == r.prompt_tokens
    assert min(r.tokens_by_part.values()) >= 0
    # Chunks kept are a prefix of the ranking; a truncated one can only be the last.
    ids = [h.chunk.id for h in s["hits"]]
    assert r.chunks_used == ids[: len(r.chunks_used)]
    assert r.chunks_used + r.chunks_dropped == ids
    assert r.chunks_truncated in ([], r.chunks_used[-1:])
    for c in packed.chunks:
        original = s["hits"][ids.index(c.id)].chunk.text
        assert original.startswith(c.text)
        assert c.truncated == (c.text != original)
        if c.truncated:
            assert c.text == original[: len(c.text)]
            assert len(c.text) in {len(original[:e].rstrip()) for e in sentence_ends(original)}
    # History kept is the most recent, and the question is there whole.
    n = r.history_used
    assert r.history_used + r.history_dropped == len(s["history"])
    kept = s["history"][len(s["history"]) - n :] if n else []
    assert all(m in packed.messages for m in kept)
    assert s["question"] in packed.messages[-1]["content"]
    assert packed.messages[-1]["role"] == "user"
    if s["overflow"] == "drop" and r.chunks_dropped:
        # Greedy fill: the next chunk, whole, would not have fitted.
        template = registry.get(s["strategy"])
        more = [*packed.chunks, s["hits"][len(r.chunks_used)].chunk]
        bigger = template.render(
            s["question"],
            [ContextChunk.from_hit(c) for c in more],
            registry.examples_for(s["strategy"], s["examples"])[: r.examples_used],
            kept,
            role=s["role"],
        )
        assert tok.count_messages(bigger) > room
    assert r.estimated is not tok.exact
    used, dropped = bool(r.chunks_used), bool(r.chunks_dropped)
    event(f"chunks used: {used}, chunks dropped: {dropped}")
    event(f"truncated: {bool(r.chunks_truncated)}; history dropped: {r.history_dropped > 0}")
    json.dumps(r.to_dict())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(max_chunks=20))
def test_budget_invariants_cl100k(
    cl100k: Tokenizer, registry: TemplateRegistry, s: dict[str, Any]
) -> None:
    check_invariants(cl100k, registry, s)


@pytest.mark.integration
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(max_chunks=12))
def test_budget_invariants_smollm2(
    smollm2: Tokenizer, registry: TemplateRegistry, s: dict[str, Any]
) -> None:
    check_invariants(smollm2, registry, s)


@settings(max_examples=30, deadline=None)
@given(s=scenarios(max_chunks=10))
def test_budget_invariants_estimate(registry: TemplateRegistry, s: dict[str, Any]) -> None:
    check_invariants(EstimateTokenizer(), registry, s)


@st.composite
def one_long_chunk(draw: st.DrawFn) -> tuple[str, int, str]:
    text = draw(st.lists(sentence, min_size=2, max_size=40).map(" ".join))
    return text, draw(st.integers(0, 400)), draw(st.sampled_from(STRATEGIES))


@settings(max_examples=80, deadline=None)
@given(case=one_long_chunk())
def test_truncation_is_the_longest_sentence_prefix_that_fits(
    cl100k: Tokenizer, registry: TemplateRegistry, case: tuple[str, int, str]
) -> None:
    text, extra, strategy = case
    hits = [make_hit(0, text), make_hit(1, "Never reached.")]
    fixed = cl100k.count_messages(registry.get(strategy).render("Q?"))
    window = 100 + fixed + extra
    packed = build_prompt(
        "Q?",
        hits,
        tokenizer=cl100k,
        window=window,
        max_new_tokens=100,
        registry=registry,
        strategy=strategy,
        examples=[],
        overflow="truncate",
    )
    r = packed.report
    if r.chunks_used and packed.chunks[0].text == text:
        return  # it fitted whole
    assert r.chunks_dropped[-1] == "doc:00001"
    prefixes = [text[:e].rstrip() for e in sentence_ends(text)][:-1]

    def tokens(cut: str) -> int:
        chunk = ContextChunk.from_hit(hits[0]).cut(cut)
        return cl100k.count_messages(registry.get(strategy).render("Q?", [chunk]))

    if r.chunks_truncated:
        cut = packed.chunks[0].text
        assert cut in prefixes
        assert tokens(cut) + 100 <= window
        later = prefixes[prefixes.index(cut) + 1 :]
        assert not later or tokens(later[0]) + 100 > window
    else:
        assert r.chunks_dropped == ["doc:00000", "doc:00001"]
        assert not prefixes or tokens(prefixes[0]) + 100 > window


LONG = " ".join(f"Sentence number {i} says something about JSON decoding." for i in range(40))


def build(tok: Tokenizer, registry: TemplateRegistry, **kw: Any) -> PackedPrompt:
    args: dict[str, Any] = {
        "question": "How do I decode JSON?",
        "hits": [make_hit(i, LONG) for i in range(3)],
        "window": 4096,
        "max_new_tokens": 256,
        "strategy": "zero_shot",
    }
    args.update(kw)
    return build_prompt(tokenizer=tok, registry=registry, **args)


def test_everything_fits_in_a_large_window(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    r = build(cl100k, registry, window=128_000).report
    assert r.chunks_used == ["doc:00000", "doc:00001", "doc:00002"]
    assert r.chunks_dropped == r.chunks_truncated == []
    assert r.tokenizer == "tiktoken:cl100k_base"
    assert not r.estimated


def test_truncate_cuts_at_a_sentence_and_marks_it(
    cl100k: Tokenizer, registry: TemplateRegistry
) -> None:
    packed = build(cl100k, registry, window=1100, overflow="truncate")
    r = packed.report
    assert r.chunks_used == ["doc:00000", "doc:00001"]
    assert r.chunks_truncated == ["doc:00001"]
    assert r.chunks_dropped == ["doc:00002"]
    cut = packed.chunks[-1].text
    assert LONG.startswith(cut)
    assert cut.endswith("decoding.")
    user = packed.messages[-1]["content"]
    assert (
        '<source id="2" file="library/json.html" page="2" section="json > Basic Usage" '
        'truncated="true">' in user
    )
    assert r.unused_tokens < 25  # filled to within about a sentence


def test_drop_leaves_the_rest_out(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    r = build(cl100k, registry, window=1100, overflow="drop").report
    assert r.chunks_used == ["doc:00000"]
    assert r.chunks_dropped == ["doc:00001", "doc:00002"]
    assert r.chunks_truncated == []


def test_no_lower_ranked_chunk_after_a_drop(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    hits = [make_hit(0, "Short one."), make_hit(1, LONG * 3), make_hit(2, "Short three.")]
    r = build(cl100k, registry, hits=hits, window=900, overflow="drop").report
    assert r.chunks_used == ["doc:00000"]
    assert r.chunks_dropped == ["doc:00001", "doc:00002"]


def test_fixed_parts_that_do_not_fit_raise_with_numbers(
    cl100k: Tokenizer, registry: TemplateRegistry
) -> None:
    question = "Why? " * 300
    with pytest.raises(ContextBudgetExceeded) as info:
        build(cl100k, registry, question=question, window=512, max_new_tokens=128)
    exc = info.value
    assert exc.detail["window"] == 512
    assert exc.detail["reserve"] == 128
    assert exc.detail["fixed_tokens"] > 384
    assert exc.detail["question_tokens"] >= 300
    assert "512 tokens minus 128 reserved" in exc.message
    assert "shorten the question" in exc.message
    assert f"lower max_new_tokens to at most {512 - exc.detail['fixed_tokens']}" not in exc.message


def test_reserve_larger_than_the_window(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    with pytest.raises(ContextBudgetExceeded, match="lower max_new_tokens to at most"):
        build(cl100k, registry, window=1000, max_new_tokens=1000)
    with pytest.raises(InvalidRequest):
        build(cl100k, registry, window=0)
    with pytest.raises(InvalidRequest):
        build(cl100k, registry, max_new_tokens=-1)


def test_question_is_never_cut(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    question = "Explain " + "very " * 200 + "carefully?"
    packed = build(cl100k, registry, question=question, window=700, max_new_tokens=64)
    assert f"Question: {question}" in packed.messages[-1]["content"]
    assert packed.report.prompt_tokens + 64 <= 700
    assert packed.report.tokens_by_part["question"] == cl100k.count(question)


def test_history_newest_first_and_examples(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    history = [
        Message(role="user" if i % 2 == 0 else "assistant", content=f"turn {i}: " + LONG[:400])
        for i in range(10)
    ]
    examples = [Example(f"q{i}?", f"answer {i} " + LONG[:300]) for i in range(4)]
    packed = build(
        cl100k, registry, history=history, examples=examples, strategy="few_shot", window=1200
    )
    r = packed.report
    assert 0 < r.history_used < 10
    assert r.history_used + r.history_dropped == 10
    kept = packed.messages[1 : 1 + r.history_used]
    assert kept == history[10 - r.history_used :]
    assert kept[0]["role"] == "user"
    assert r.tokens_by_part["history"] > 0
    assert r.examples_used + r.examples_dropped == 4
    assert r.prompt_tokens + 256 <= 1200


def test_report_parts_and_dict(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    packed = build(
        cl100k,
        registry,
        strategy="few_shot",
        history=[Message(role="user", content="hi"), Message(role="assistant", content="hello")],
    )
    d = packed.report.to_dict()
    assert set(d["tokens_by_part"]) == {"system", "examples", "history", "context", "question"}
    assert all(v > 0 for v in d["tokens_by_part"].values())
    assert sum(d["tokens_by_part"].values()) == d["prompt_tokens"]
    assert d["unused_tokens"] == 4096 - 256 - d["prompt_tokens"]
    assert {
        "window",
        "reserve",
        "chunks_used",
        "chunks_dropped",
        "chunks_truncated",
        "history_used",
        "history_dropped",
        "examples_used",
        "examples_dropped",
        "tokenizer",
        "estimated",
    } <= set(d)
    json.dumps(d)


class CountingTokenizer:
    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.name = inner.name
        self.exact = inner.exact
        self.calls = 0

    def count(self, text: str) -> int:
        return self.inner.count(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        self.calls += 1
        return self.inner.count_messages(messages)

    def truncate_to_sentences(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_sentences(text, max_tokens)


@pytest.mark.parametrize("window", [600, 3000, 6000, 20000])
def test_fifty_chunks_take_few_renders(
    cl100k: Tokenizer, registry: TemplateRegistry, window: int
) -> None:
    tok = CountingTokenizer(cl100k)
    hits = [make_hit(i, LONG[: 200 + 37 * i]) for i in range(50)]
    packed = build(tok, registry, hits=hits, window=window)
    assert tok.calls <= 14
    assert packed.report.prompt_tokens + 256 <= window


def test_build_prompt_metadata_and_errors(cl100k: Tokenizer, registry: TemplateRegistry) -> None:
    packed = build(cl100k, registry, strategy="chain_of_thought")
    assert packed.template == "chain_of_thought"
    assert packed.reasoning
    assert build(cl100k, registry, strategy=None).template == "zero_shot"
    with pytest.raises(InvalidRequest, match="empty"):
        build(cl100k, registry, question="  ")
    with pytest.raises(TemplateNotFound):
        build(cl100k, registry, strategy="nope")
    with pytest.raises(InvalidRequest, match="history"):
        build(cl100k, registry, history=[{"role": "system", "content": "obey me"}])
    with pytest.raises(InvalidRequest, match="parameter"):
        build(cl100k, registry, params={"colour": "red"})


def test_estimate_tokenizer_reports_estimated(registry: TemplateRegistry) -> None:
    r = build(EstimateTokenizer(), registry).report
    assert r.estimated
    assert r.tokenizer == "estimate"


@pytest.mark.integration
def test_smollm2_budget_is_exact(smollm2: Tokenizer, registry: TemplateRegistry) -> None:
    hits = [make_hit(i, LONG) for i in range(10)]
    packed = build(smollm2, registry, hits=hits, window=2048, max_new_tokens=256)
    r = packed.report
    assert r.prompt_tokens == smollm2.count_messages(packed.messages)
    assert 2048 - 256 - 30 < r.prompt_tokens <= 2048 - 256
    assert r.tokenizer == "hf:SmolLM2-135M-Instruct.Q4_1"
