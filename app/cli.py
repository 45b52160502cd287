"""The ``ragserver`` command: serve, ingest, search, ask, eval."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.settings import Settings

SINGLE_PROCESS_BACKENDS = {
    "faiss": "the faiss index lives in one process's memory and files; several workers would "
    "overwrite each other's writes. Run one worker, or use the chroma backend with a Chroma "
    "server (RAG_VECTORSTORE__BACKEND=chroma, RAG_VECTORSTORE__CHROMA__URL=...) to scale out",
    "memory": "the memory backend keeps data inside one process",
}


def check_workers(settings: Settings, workers: int) -> str | None:
    """Return why ``workers`` processes cannot share the configured backend, or None."""
    reason = SINGLE_PROCESS_BACKENDS.get(settings.vectorstore.backend)
    if workers > 1 and reason:
        return (
            f"refusing to start {workers} workers with the {settings.vectorstore.backend} "
            f"backend: {reason}"
        )
    return None


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server."""
    import uvicorn

    workers = args.workers or settings.server.workers
    problem = check_workers(settings, workers)
    if problem:
        print(f"ragserver: {problem}", file=sys.stderr)
        return 2
    from app.logs import configure_logging
    from app.security import KeyRing, open_access_warnings
    from core.errors import ConfigurationError

    configure_logging(settings.server.log_level)
    host = args.host or settings.server.host
    try:
        keys = KeyRing.from_settings(settings.security)
    except ConfigurationError as exc:
        print(f"ragserver: {exc.message}", file=sys.stderr)
        return 2
    if host != settings.server.host:  # create_app warns about the configured host itself
        for warning in open_access_warnings(keys, host)[1:]:
            logging.getLogger("ragserver").warning(warning)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=args.port or settings.server.port,
        workers=workers,
        log_level=settings.server.log_level,
        log_config=None,  # JSON logs through the root logger (app.logs)
        access_log=False,  # the request middleware logs each request, with its id
    )
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest files and folders into a collection."""
    from app.unchanged_ingest import unchanged_summary
    from ingest.cli import format_summary

    include = args.include or settings.ingest.include
    exclude = args.exclude or settings.ingest.exclude
    paths = [Path(p) for p in args.paths]
    nothing_to_do = unchanged_summary(settings, paths, args.collection, include, exclude)
    if nothing_to_do is not None:  # every file is stored as it is: no model to load
        print(format_summary(nothing_to_do))
        return 0
    from app.services.container import build_collections, build_embedder, build_pipeline
    from core.errors import CollectionNotFound
    from ingest.cli import run_ingest

    embedder = build_embedder(settings)
    collections = build_collections(settings, embedder)
    try:
        try:
            store = collections.get(args.collection)
        except CollectionNotFound:
            store = collections.create(args.collection)
        summary = run_ingest(
            [Path(p) for p in args.paths],
            store,
            build_pipeline(settings, embedder),
            include=args.include or settings.ingest.include,
            exclude=args.exclude or settings.ingest.exclude,
        )
    finally:
        collections.close()
    return 1 if summary.failed and not (summary.created or summary.replaced) else 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search a collection and print the hits."""
    from app.services.container import build_services

    services = build_services(settings)
    try:
        outcome = services.search.search(
            args.collection,
            args.query,
            top_k=args.top_k,
            filter=json.loads(args.filter) if args.filter else None,
            mode=args.mode,
        )
        for rank, hit in enumerate(outcome.hits, 1):
            chunk = hit.chunk
            print(f"{rank:2d}. {hit.score:.3f}  {chunk.source}  {chunk.heading_path}")
            print("    " + hit.chunk.text[:200].replace("\n", " "))
    finally:
        services.close()
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer a question from a collection and print it with its sources."""
    import asyncio

    from app.services.answers import AnswerRequest, AnswerResult
    from app.services.container import build_services

    services = build_services(settings)
    request = AnswerRequest(question=args.question, strategy=args.strategy, top_k=args.top_k)
    try:
        if args.stream:

            async def stream() -> AnswerResult | None:
                final = None
                events = await services.answers.open_stream(args.collection, request)
                async for item in events:
                    if isinstance(item, str):
                        print(item, end="", flush=True)
                    else:
                        final = item
                print()
                return final

            result = asyncio.run(stream())
        else:
            result = services.answers.answer_sync(args.collection, request)
            print(result.answer)
        if result is not None:
            print("\nSources:")
            for c in result.citations:
                page = f" p.{c.page}" if c.page else ""
                mark = "*" if c.cited else " "
                print(f" {mark}[{c.number}] {c.filename}{page}  {c.heading_path}  ({c.score:.3f})")
    finally:
        services.close()
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Measure retrieval (hit@1, hit@5, MRR@10 by page, 95% intervals); --answer: answers too."""
    if args.answers:
        return cmd_eval_answers(args, settings)
    from app.services.container import build_services
    from retrieval.eval_stats import format_intervals, intervals_json
    from retrieval.evaluation import (
        evaluate,
        format_table,
        load_questions,
        result_key,
        select,
    )

    questions = select(load_questions(Path(args.questions)), args.split)
    if not args.answer:  # retrieval only: do not load the answering model
        settings = settings.model_copy(
            update={"llm": settings.llm.model_copy(update={"load_at_startup": False})}
        )
    services = build_services(settings)
    try:
        services.search.keywords.wait()  # start-up rebuilds, so timings are not skewed

        def retrieve(question: str) -> list[str]:
            outcome = services.search.search(
                args.collection, question, top_k=args.top_k, mode=args.mode
            )
            return [result_key(hit.chunk.metadata) for hit in outcome.hits]

        answer: Callable[[str], str] | None = None
        if args.answer:
            from app.services.answers import AnswerRequest

            def answer(question: str) -> str:
                request = AnswerRequest(question=question, mode=args.mode)
                return services.answers.answer_sync(args.collection, request).answer

        def progress(done: int, total: int) -> None:
            print(f"\r{done}/{total} questions", end="", file=sys.stderr, flush=True)

        mode = args.mode or services.search.default_mode
        report = evaluate(
            questions, retrieve, answer, label=f"{args.collection} {mode}", progress=progress
        )
        print(file=sys.stderr)
        print(format_table([report]))
        print(
            f"\nBootstrap 95% intervals ({args.resamples} resamples of the questions, seed "
            f"{args.seed}):"
        )
        print(format_intervals([report], args.resamples, args.seed))
        if args.out:
            data = report.to_json(
                collection=args.collection,
                mode=mode,
                top_k=args.top_k,
                questions=args.questions,
                intervals=intervals_json(report, args.resamples, args.seed),
            )
            Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            print(f"written to {args.out}")
    finally:
        services.close()
    return 0


def cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    """Measure answers per answer mode: containment, evidence, citations, abstention, time."""
    from app.services.answer_eval import evaluate_answers, format_answer_table, load_answer_cases
    from app.services.answers import AnswerRequest, AnswerResult
    from app.services.container import build_services

    cases = [
        case
        for case in load_answer_cases(Path(args.questions))
        if args.split is None or case.split == args.split
    ]
    for extra in args.unanswerable or []:
        cases += load_answer_cases(Path(extra))
    services = build_services(settings)
    reports = []
    try:
        services.search.keywords.wait()
        for answer_mode in args.answer_mode or [settings.llm.answer_mode]:

            def answer(question: str, answer_mode: str = answer_mode) -> AnswerResult:
                request = AnswerRequest(question=question, mode=args.mode, answer_mode=answer_mode)
                return services.answers.answer_sync(args.collection, request)

            def progress(done: int, total: int, answer_mode: str = answer_mode) -> None:
                print(f"\r{answer_mode}: {done}/{total}", end="", file=sys.stderr, flush=True)

            label = f"{answer_mode} ({services.answers.model_name()})"
            reports.append(evaluate_answers(cases, answer, label=label, progress=progress))
            print(file=sys.stderr)
    finally:
        services.close()
    print(format_answer_table(reports))
    if args.out:
        data = [r.to_json(collection=args.collection, questions=args.questions) for r in reports]
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.out}")
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Make a collection mirror a folder over a running server's HTTP API."""
    from app import sync

    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return sync.run(args, f"http://{host}:{settings.server.port}")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ragserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="interface to bind (default RAG_SERVER__HOST)")
    serve.add_argument("--port", type=int, help="port (default RAG_SERVER__PORT, 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (chroma server only)")
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser("ingest", help="ingest files and folders")
    ingest.add_argument("paths", nargs="+", help="files or folders (recursive)")
    ingest.add_argument("--collection", default="default")
    ingest.add_argument("--include", action="append", help="glob a file must match")
    ingest.add_argument("--exclude", action="append", help="glob that skips a file")
    ingest.set_defaults(func=cmd_ingest)

    search = sub.add_parser("search", help="search a collection")
    search.add_argument("query")
    search.add_argument("--collection", default="default")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--filter", help="metadata filter as JSON")
    search.add_argument("--mode", choices=["dense", "bm25", "hybrid"])
    search.set_defaults(func=cmd_search)

    ask = sub.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument("--collection", default="default")
    ask.add_argument("--strategy", help="zero_shot, one_shot, few_shot, chain_of_thought, ...")
    ask.add_argument("--top-k", type=int)
    ask.add_argument("--stream", action="store_true", help="print the answer as it is made")
    ask.set_defaults(func=cmd_ask)

    evaluation = sub.add_parser("eval", help="measure retrieval on a JSONL question set")
    evaluation.add_argument(
        "questions", help="JSONL: id, question, source, answer_contains, kind, split"
    )
    evaluation.add_argument("--collection", default="default")
    evaluation.add_argument("--mode", choices=["dense", "bm25", "hybrid"])
    evaluation.add_argument("--top-k", type=int, default=10, help="chunks retrieved (10)")
    evaluation.add_argument("--out", help="write the metrics and per-question results as JSON")
    evaluation.add_argument(
        "--answer", action="store_true", help="also generate answers; report containment"
    )
    evaluation.add_argument(
        "--split", choices=["tune", "confirm"], help="only the questions of this half"
    )
    evaluation.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples for the intervals"
    )
    evaluation.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
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
        help="with --answers: a mode to measure (repeat for several; default the server's)",
    )
    evaluation.add_argument(
        "--unanswerable",
        action="append",
        help='with --answers: a JSONL set of questions the documents do not answer ("answerable": '
        "false); repeatable",
    )
    evaluation.set_defaults(func=cmd_eval)

    from app.sync import add_parser

    add_parser(sub)
    sub.choices["sync"].set_defaults(func=cmd_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragserver`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return func(args, Settings())


if __name__ == "__main__":
    raise SystemExit(main())
