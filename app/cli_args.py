"""The arguments of each ``ragserver`` subcommand; help texts show every default."""

from __future__ import annotations

import argparse

MODES = ["dense", "bm25", "hybrid"]
MODE_HELP = "retrieval mode (default: RAG_RETRIEVAL__MODE, hybrid)"


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default; options whose default comes from a setting say so."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        hidden = action.default is None or action.default is False  # unset, or a flag
        if "default" in text or hidden or action.default == argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def remote_options() -> argparse.ArgumentParser:
    """The options ingest, search and ask share to talk to a running server."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("running server")
    group.add_argument(
        "--server",
        metavar="URL",
        help="send the work to the server at URL (e.g. http://127.0.0.1:8000) instead of "
        "opening the data directory; needed while a FAISS server runs on it "
        "(default: RAG_CLIENT__SERVER_URL, else the data directory)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key for --server (default: RAG_CLIENT__API_KEY, else none)",
    )
    return parent


def serve_arguments(serve: argparse.ArgumentParser) -> None:
    """``ragserver serve``."""
    serve.add_argument("--host", help="interface to bind (default: RAG_SERVER__HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RAG_SERVER__PORT, 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes, chroma only (default: RAG_SERVER__WORKERS)"
    )


def ingest_arguments(ingest: argparse.ArgumentParser) -> None:
    """``ragserver ingest``."""
    ingest.add_argument("paths", nargs="+", help="files or folders (recursive)")
    ingest.add_argument("--collection", default="default", help="collection to add to")
    ingest.add_argument(
        "--create",
        action="store_true",
        help="create the collection if it does not exist (without it a misspelt name is an "
        "error, not a new collection)",
    )
    ingest.add_argument(
        "--include", action="append", help="glob a file must match (default: RAG_INGEST__INCLUDE)"
    )
    ingest.add_argument(
        "--exclude", action="append", help="glob that skips a file (default: RAG_INGEST__EXCLUDE)"
    )


def search_arguments(search: argparse.ArgumentParser) -> None:
    """``ragserver search``."""
    search.add_argument("query", help="what to look for")
    search.add_argument("--collection", default="default", help="collection to search")
    search.add_argument("--top-k", type=int, default=5, help="hits to show")
    search.add_argument(
        "--filter",
        help="""metadata filter as JSON, e.g. '{"source": "README.md"}' (default: none)""",
    )
    search.add_argument("--mode", choices=MODES, help=MODE_HELP)


def ask_arguments(ask: argparse.ArgumentParser) -> None:
    """``ragserver ask``."""
    ask.add_argument("question", help="the question")
    ask.add_argument("--collection", default="default", help="collection to answer from")
    ask.add_argument(
        "--strategy",
        help="prompt template: zero_shot, one_shot, few_shot, chain_of_thought, ... "
        "(default: RAG_PROMPTS__DEFAULT_STRATEGY, zero_shot)",
    )
    ask.add_argument(
        "--top-k", type=int, help="chunks to retrieve (default: RAG_RETRIEVAL__TOP_K, 5)"
    )
    ask.add_argument("--stream", action="store_true", help="print the answer as it is made")


def eval_arguments(evaluation: argparse.ArgumentParser) -> None:
    """``ragserver eval``."""
    evaluation.add_argument(
        "questions", help="JSONL: id, question, source, answer_contains, kind, split"
    )
    evaluation.add_argument("--collection", default="default", help="collection to evaluate")
    evaluation.add_argument("--mode", choices=MODES, help=MODE_HELP)
    evaluation.add_argument("--top-k", type=int, default=10, help="chunks retrieved")
    evaluation.add_argument(
        "--out", help="write the metrics and per-question results as JSON (default: no file)"
    )
    evaluation.add_argument(
        "--answer", action="store_true", help="also generate answers; report containment"
    )
    evaluation.add_argument(
        "--split",
        choices=["tune", "confirm"],
        help="only the questions of this half (default: all)",
    )
    evaluation.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples for the intervals"
    )
    evaluation.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    evaluation.add_argument(
        "--answers",
        action="store_true",
        help="evaluate answers instead of retrieval: containment, evidence, citations, "
        "abstention, seconds per answer, per answer mode",
    )
    evaluation.add_argument(
        "--answer-mode",
        action="append",
        choices=["extractive", "generative", "auto"],
        help="with --answers: a mode to measure (repeat for several; default: the server's)",
    )
    evaluation.add_argument(
        "--unanswerable",
        action="append",
        help='with --answers: a JSONL set of questions the documents do not answer ("answerable": '
        "false); repeatable (default: none)",
    )
