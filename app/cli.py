"""The ``ragserver`` command: serve, worker, ingest, search, ask, eval, sync."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from app.cli_args import (
    DefaultsFormatter,
    ask_arguments,
    eval_arguments,
    ingest_arguments,
    remote_options,
    search_arguments,
    serve_arguments,
)
from app.cli_remote import (
    CliError,
    HitLine,
    RemoteClient,
    citation_lines,
    empty_collection_message,
    format_remote_summary,
    missing_collection_message,
    print_hits,
    remote_ask,
    remote_ingest,
    remote_search,
)
from app.settings import Settings
from core.errors import RagError, StoreLocked

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
        timeout_graceful_shutdown=settings.server.shutdown_timeout_s,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run background ingestion jobs only (no HTTP), until SIGTERM."""
    from app.worker import run_worker, worker_problem

    problem = worker_problem(settings)
    if problem:
        print(f"ragserver: refusing to start a worker: {problem}", file=sys.stderr)
        return 2
    return run_worker(settings)


def server_of(args: argparse.Namespace, settings: Settings) -> RemoteClient | None:
    """A client of the server named by ``--server`` (or RAG_CLIENT__SERVER_URL), if any."""
    url = args.server or settings.client.server_url
    if not url:
        return None
    return RemoteClient(url, args.api_key or settings.client.api_key)


def parse_filter(raw: str | None) -> dict[str, Any] | None:
    """``--filter`` as a JSON object, or ``CliError`` saying what is wrong with it."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--filter is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); "
            """pass an object such as '{"source": "README.md"}'"""
        ) from None
    if not isinstance(value, dict):
        raise CliError(f"--filter must be a JSON object, not {type(value).__name__}")
    return value


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest files and folders into a collection; non-zero exit when any file failed."""
    include = args.include or settings.ingest.include
    exclude = args.exclude or settings.ingest.exclude
    paths = [Path(p) for p in args.paths]
    client = server_of(args, settings)
    if client is not None:
        try:
            remote = remote_ingest(
                client,
                paths,
                args.collection,
                include=include,
                exclude=exclude,
                create=args.create,
            )
        finally:
            client.close()
        print(format_remote_summary(remote))
        return 1 if remote.failed else 0

    from app.unchanged_ingest import unchanged_summary
    from ingest.cli import format_summary

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
            if not args.create:
                names = [c.name for c in collections.list()]
                raise CliError(missing_collection_message(args.collection, names)) from None
            store = collections.create(args.collection)
            print(f"created collection '{args.collection}'")
        summary = run_ingest(paths, store, build_pipeline(settings, embedder), include, exclude)
    finally:
        collections.close()
    return 1 if summary.failed else 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search a collection and print the hits (loads the embedder only, no answering model)."""
    filter = parse_filter(args.filter)
    client = server_of(args, settings)
    if client is not None:
        try:
            hits, warnings = remote_search(
                client, args.collection, args.query, top_k=args.top_k, filter=filter, mode=args.mode
            )
        finally:
            client.close()
    else:
        hits, warnings = local_search(args, settings, filter)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print_hits(hits)
    return 0


def local_search(
    args: argparse.Namespace, settings: Settings, filter: dict[str, Any] | None
) -> tuple[list[HitLine], list[str]]:
    """Search the data directory itself, building only the embedder, the store and BM25."""
    from app.services.container import build_collections, build_embedder, build_search

    embedder = build_embedder(settings)
    collections = build_collections(settings, embedder)
    search = build_search(settings, collections, embedder)
    try:
        if collections.info(args.collection).chunk_count == 0:
            raise CliError(empty_collection_message(args.collection))
        outcome = search.search(
            args.collection, args.query, top_k=args.top_k, filter=filter, mode=args.mode
        )
        hits = [
            HitLine(
                hit.score,
                str(hit.chunk.metadata.get("source", "")),
                str(hit.chunk.metadata.get("heading_path") or ""),
                hit.chunk.text,
            )
            for hit in outcome.hits
        ]
        return hits, list(outcome.warnings)
    finally:
        search.close()
        collections.close()


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer a question from a collection and print it with its sources."""
    client = server_of(args, settings)
    if client is not None:
        try:
            remote_ask(
                client,
                args.collection,
                args.question,
                strategy=args.strategy,
                top_k=args.top_k,
                stream=args.stream,
            )
        finally:
            client.close()
        return 0

    import asyncio
    from dataclasses import asdict

    from app.services.answers import AnswerRequest, AnswerResult
    from app.services.container import build_services

    services = build_services(settings)
    request = AnswerRequest(question=args.question, strategy=args.strategy, top_k=args.top_k)
    try:
        if services.collections.info(args.collection).chunk_count == 0:
            raise CliError(empty_collection_message(args.collection))
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
            for line in citation_lines([asdict(c) for c in result.citations]):
                print(line)
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
    args.api_key = args.api_key or settings.client.api_key
    default_url = settings.client.server_url or f"http://{host}:{settings.server.port}"
    return sync.run(args, default_url)


def package_version() -> str:
    """The installed ragserver's version."""
    try:
        return version("ragserver")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


AddArguments = Callable[[argparse.ArgumentParser], None]
Command = Callable[[argparse.Namespace, Settings], int]


def no_arguments(command: argparse.ArgumentParser) -> None:
    """A command configured by settings alone."""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand (help texts show the defaults)."""
    fmt = DefaultsFormatter
    parser = argparse.ArgumentParser(prog="ragserver", description=__doc__, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"ragserver {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    remote = [remote_options()]
    commands: list[tuple[str, str, list[argparse.ArgumentParser], AddArguments, Command]] = [
        ("serve", "run the HTTP server", [], serve_arguments, cmd_serve),
        ("ingest", "ingest files and folders", remote, ingest_arguments, cmd_ingest),
        ("search", "search a collection", remote, search_arguments, cmd_search),
        ("ask", "answer a question with citations", remote, ask_arguments, cmd_ask),
        ("eval", "measure retrieval on a JSONL question set", [], eval_arguments, cmd_eval),
        ("worker", "run background ingestion jobs only (no HTTP)", [], no_arguments, cmd_worker),
    ]
    for name, text, parents, add_arguments, func in commands:
        command = sub.add_parser(name, help=text, parents=parents, formatter_class=fmt)
        add_arguments(command)
        command.set_defaults(func=func)

    from app.sync import add_parser

    add_parser(sub)
    sub.choices["sync"].set_defaults(func=cmd_sync)
    sub.choices["sync"].formatter_class = fmt
    return parser


REMOTE_COMMANDS = ("ingest", "search", "ask", "sync")
#: Long-running commands wait for a collection a stopping process still holds; others do not.
WAITING_COMMANDS = ("serve", "worker")


def locked_message(args: argparse.Namespace, settings: Settings) -> str:
    """One line for a data directory held by a running server: how to go through it."""
    url = f"http://{settings.server.host}:{settings.server.port}"
    held = (
        f"the data directory {settings.data_dir} is in use by a running ragserver (the FAISS "
        "store allows one process)"
    )
    if args.command not in REMOTE_COMMANDS:
        return f"{held}; stop the server first, or point RAG_DATA_DIR at another directory"
    return (
        f"{held}; send this command through it with --server {url} "
        f"(e.g. ragserver {args.command} --server {url} ...), or stop the server first"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragserver`` console script; errors are one line, exit status 1."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    settings = Settings()
    if args.command not in WAITING_COMMANDS:
        settings.vectorstore.faiss.lock_wait_s = 0.0
    try:
        return func(args, settings)
    except StoreLocked:
        print(f"ragserver: {locked_message(args, settings)}", file=sys.stderr)
    except CliError as exc:
        print(f"ragserver: {exc}", file=sys.stderr)
    except RagError as exc:
        print(f"ragserver: {exc.message}", file=sys.stderr)
    except KeyboardInterrupt:
        print("ragserver: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
