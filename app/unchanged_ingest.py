"""``ragserver ingest`` with nothing to do: answered from the store alone, loading no model.

Loading torch and the embedding model takes seconds; deciding that every file is already
stored with the same bytes takes a hash per file. So the command first opens the collection
without an embedder and checks every file (``ingest.results.unchanged_results``); only when
some file is new, changed or refused does it load the model and run the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from app.settings import Settings
from core.errors import CollectionNotFound
from ingest.embedders import embedder_model_name
from ingest.limits import LoadLimits
from ingest.results import IngestSummary, collect_files, summarise, unchanged_results


def unchanged_summary(
    settings: Settings,
    paths: Sequence[Path],
    collection: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> IngestSummary | None:
    """Return the summary of an ingest that changes nothing, or None if it would change something.

    None also when the collection does not exist, was built with another embedding model,
    or a file is missing or refused: the full ingest reports those.
    """
    from app.services.container import build_store_client

    started = time.perf_counter()
    files, skipped = collect_files(paths, include, exclude)
    if not files:
        return None
    client = build_store_client(settings)
    try:
        try:
            store = client.get_collection(collection)
        except CollectionNotFound:
            return None
        if store.embedding_model != embedder_model_name(settings.embedding.model):
            return None
        ingest = settings.ingest
        results = unchanged_results(
            store, files, ingest.chunk_size, ingest.chunk_overlap, LoadLimits.from_settings(ingest)
        )
    finally:
        client.close()
    if results is None:
        return None
    return summarise(results, skipped, time.perf_counter() - started)
