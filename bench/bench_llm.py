"""Time to first token and decode speed of the default local model, bare and through ragserver.

Usage: ``python bench/bench_llm.py [--runs 5] [--max-new-tokens 64] [--cache-dir data/models]``

Every path streams the same greedy answer to a fixed prompt; each is run once to warm up, then
``--runs`` times (the paths taking turns), and the medians are printed as a markdown table with
one column per path. Another path (say, through the HTTP server) is one more entry in the
``paths`` given to ``compare``: an ``iter_factory`` as ``measure_stream`` takes it.

- TTFT: seconds from the call to the first non-empty piece of text.
- tokens/s: tokens after the first, divided by the time after the first (the decode rate).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from llms.base import Message  # noqa: E402

PROMPT: list[Message] = [
    {"role": "user", "content": "Write a detailed story about a lighthouse keeper."}
]


def measure_stream(
    iter_factory: Callable[[], Iterable[str]],
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[float, float]:
    """Stream one answer and time it.

    Args:
        iter_factory: Starts a generation and returns its text pieces; called once, timed.
        count_tokens: Counts the tokens of the whole answer; None counts one token per piece.

    Returns:
        (seconds to the first non-empty piece, tokens per second after the first token).
    """
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    for piece in iter_factory():
        if piece and first is None:
            first = time.perf_counter()
        pieces.append(piece)
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream produced no text")
    tokens = count_tokens("".join(pieces)) if count_tokens else len(pieces)
    decode_s = ended - first
    return first - started, (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else 0.0


StreamPath = tuple[Callable[[], Iterable[str]], Callable[[str], int] | None]


def compare(paths: Mapping[str, StreamPath], runs: int) -> dict[str, tuple[float, float]]:
    """Warm each path up once, then run them in turns ``runs`` times; return the medians.

    Taking turns spreads any drift in machine load evenly over the paths.

    Args:
        paths: ``{name: (iter_factory, count_tokens)}``, as ``measure_stream`` takes them.
        runs: Timed runs per path.

    Returns:
        ``{name: (median TTFT in seconds, median tokens per second)}``.
    """
    for factory, count in paths.values():
        measure_stream(factory, count)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, (factory, count) in paths.items():
            samples[name].append(measure_stream(factory, count))
    return {
        name: (statistics.median(s[0] for s in runs_), statistics.median(s[1] for s in runs_))
        for name, runs_ in samples.items()
    }


def markdown_table(results: Mapping[str, tuple[float, float]]) -> str:
    """Render ``{path: (ttft_s, tokens_per_s)}`` as a table with one column per path."""
    names = list(results)
    lines = [
        "| metric | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        "| TTFT (ms, median) | " + " | ".join(f"{results[n][0] * 1000:.0f}" for n in names) + " |",
        "| tokens/s (median) | " + " | ".join(f"{results[n][1]:.1f}" for n in names) + " |",
    ]
    return "\n".join(lines)


def bare_transformers_stream(
    model: Any, tokenizer: Any, max_new_tokens: int
) -> Callable[[], Iterator[str]]:
    """A factory streaming with ``model.generate`` directly, one piece per generated token."""
    from transformers.generation.streamers import BaseStreamer

    class TokenQueue(BaseStreamer):
        def __init__(self) -> None:
            self.items: queue.Queue[list[int] | None] = queue.Queue()
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            self.items.put(value.reshape(-1).tolist())

        def end(self) -> None:
            self.items.put(None)

    def factory() -> Iterator[str]:
        inputs = tokenizer.apply_chat_template(
            PROMPT, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        streamer = TokenQueue()
        kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "streamer": streamer}
        worker = threading.Thread(target=model.generate, kwargs={**inputs, **kwargs})
        worker.start()
        while (ids := streamer.items.get()) is not None:
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if text:  # the end-of-sequence token decodes to nothing and is not counted
                yield text
        worker.join()

    return factory


def server_stream(url: str, max_new_tokens: int) -> Callable[[], Iterator[str]]:
    """A factory streaming the same question through ragserver's OpenAI-compatible endpoint.

    The collection is empty, so the prompt is the template's system text plus the question:
    the difference to the bare path is the server's whole overhead (HTTP, retrieval, prompt
    packing, SSE) plus the template's extra prompt tokens.
    """
    import json

    import httpx

    body = {
        "model": "rag:default",
        "messages": PROMPT,
        "max_tokens": max_new_tokens,
        "stream": True,
    }

    def factory() -> Iterator[str]:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: ") :])
                if chunk.get("choices"):
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        yield text

    return factory


def start_server(threads: int) -> Any:
    """Start ``ragserver serve`` on a free port over a temporary data dir; returns it ready."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integration.live import LiveServer

    data = Path(tempfile.mkdtemp(prefix="bench-llm-")) / "data"
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    return LiveServer(data, env).start()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/models"))
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads; 0 keeps torch's default"
    )
    parser.add_argument(
        "--no-server", action="store_true", help="skip the path through a ragserver process"
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llms.base import GenerationParams
    from llms.hf_local import HFLocalGenerator

    started = time.perf_counter()
    generator = HFLocalGenerator(cache_dir=args.cache_dir)  # converts on the first run only
    load_s = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(generator.loaded_from)
    model: Any = AutoModelForCausalLM.from_pretrained(generator.loaded_from, dtype=torch.float32)
    model.eval()

    def count(text: str) -> int:
        return len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])

    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    paths: dict[str, StreamPath] = {
        "bare transformers": (
            bare_transformers_stream(model, tokenizer, args.max_new_tokens),
            None,
        ),
        "HFLocalGenerator.stream": (lambda: generator.stream(PROMPT, params), count),
    }
    server = None if args.no_server else start_server(args.threads)
    if server is not None:
        paths["ragserver /v1/chat/completions (SSE)"] = (
            server_stream(server.url, args.max_new_tokens),
            count,
        )
    try:
        results = compare(paths, args.runs)
    finally:
        if server is not None:
            server.stop()
    conversion = ", with conversion" if generator.converted else ""
    print(
        f"model {generator.model_name} from {generator.loaded_from} "
        f"(HFLocalGenerator load {load_s:.1f} s{conversion})"
        f"; {torch.get_num_threads()} torch threads; {args.runs} runs in turns after a warm-up; "
        f"up to {args.max_new_tokens} new tokens, greedy\n"
    )
    print(markdown_table(results))


if __name__ == "__main__":
    main()
