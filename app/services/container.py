"""Builds every long-lived component once from the settings (called from the lifespan)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ingest.embedders import create_embedder
from ingest.pipeline import IngestPipeline

from app.settings import Settings
from ingest.base import Embedder
from ingest.loaders import LoadLimits
from llms.base import Generator
from vectorstores.registry import create_client

from .collections import CollectionService
from .documents import DocumentService
from .jobs import JobManager
from .search import SearchService

log = logging.getLogger(__name__)
MB = 1_000_000


@dataclass
class Components:
    """Ready-made parts to use instead of building them from settings (tests, embedding)."""

    embedder: Embedder | None = None
    generator: Generator | None = None


@dataclass
class Services:
    """The application's components, built once per process."""

    settings: Settings
    embedder: Embedder
    collections: CollectionService
    documents: DocumentService
    search: SearchService
    jobs: JobManager
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        """Finish running jobs and close the stores."""
        self.jobs.close()
        self.collections.close()


def load_limits(settings: Settings) -> LoadLimits:
    """Translate the ingest settings into the loaders' bounds."""
    ingest = settings.ingest
    return LoadLimits(
        max_file_bytes=int(ingest.max_file_mb * MB),
        max_pdf_pages=ingest.max_pdf_pages,
        max_parse_seconds=ingest.max_parse_seconds,
        max_decompressed_bytes=int(ingest.max_decompressed_mb * MB),
    )


def build_embedder(settings: Settings) -> Embedder:
    """Load the configured embedding model."""
    emb = settings.embedding
    return create_embedder(emb.model, device=emb.device, backend=emb.backend)


def build_pipeline(settings: Settings, embedder: Embedder) -> IngestPipeline:
    """Create the ingestion pipeline for the configured chunking."""
    return IngestPipeline(
        embedder,
        chunk_size=settings.ingest.chunk_size,
        chunk_overlap=settings.ingest.chunk_overlap,
        limits=load_limits(settings),
    )


def build_collections(settings: Settings, embedder: Embedder) -> CollectionService:
    """Open the configured vector store backend and make sure ``default`` exists."""
    vs = settings.vectorstore
    options = getattr(vs, vs.backend).model_dump() if hasattr(vs, vs.backend) else {}
    client = create_client(vs.backend, settings.data_dir, options)
    collections = CollectionService(client, embedder)
    collections.ensure_default()
    return collections


def build_services(settings: Settings, components: Components | None = None) -> Services:
    """Build every component; slow (loads models), so the lifespan runs it off the loop."""
    components = components or Components()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = components.embedder or build_embedder(settings)
    collections = build_collections(settings, embedder)
    pipeline = build_pipeline(settings, embedder)
    documents = DocumentService(
        collections,
        pipeline,
        upload_dir=settings.data_dir / "uploads",
        max_file_bytes=int(settings.ingest.max_file_mb * MB),
    )
    search = SearchService(
        collections,
        embedder,
        default_mode=settings.retrieval.mode,
        max_top_k=settings.retrieval.max_top_k,
    )
    log.info(
        "ready: embedder %s (%d-d), vector store %s at %s",
        embedder.model_name,
        embedder.dimension,
        settings.vectorstore.backend,
        settings.data_dir,
    )
    return Services(
        settings=settings,
        embedder=embedder,
        collections=collections,
        documents=documents,
        search=search,
        jobs=JobManager(),
    )
