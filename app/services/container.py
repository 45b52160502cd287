"""Builds every long-lived component once from the settings (called from the lifespan)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.settings import Settings
from ingest.backends import REMOTE_BACKENDS
from ingest.base import Embedder
from ingest.embedders import create_embedder
from ingest.embedding_cache import EmbeddingCache
from ingest.jobs import JobStore
from ingest.loaders import LoadLimits
from ingest.pipeline import IngestPipeline
from llms.base import Generator
from llms.queue import GenerationGate
from llms.registry import create_generator
from prompts.templates import TemplateRegistry
from vectorstores.base import VectorStoreClient
from vectorstores.registry import create_client

from .answers import AnswerService, GeneratorHolder
from .collections import CollectionService
from .conversation_store import ConversationStore
from .conversations import ConversationService
from .documents import DocumentService
from .jobs import JobService
from .observer import NullObserver, ServiceObserver
from .reader import EvidenceReader
from .search import SearchService
from .uploads import UploadService

log = logging.getLogger(__name__)
MB = 1_000_000


@dataclass
class Components:
    """Ready-made parts to use instead of building them from settings (tests, embedding).

    Attributes:
        embedder: The embedder, instead of loading the configured one.
        generator: The answering model, instead of loading the configured one.
        observer: Receives the services' events (the server's metrics); none by default.
    """

    embedder: Embedder | None = None
    generator: Generator | None = None
    observer: ServiceObserver | None = None


@dataclass
class Services:
    """The application's components, built once per process."""

    settings: Settings
    embedder: Embedder
    collections: CollectionService
    documents: DocumentService
    uploads: UploadService
    search: SearchService
    jobs: JobService
    answers: AnswerService
    generators: GeneratorHolder
    conversations: ConversationService

    def close(self) -> None:
        """Hand running jobs back, close the stores and release the model."""
        self.jobs.close()
        self.conversations.close()
        self.search.close()
        self.collections.close()
        self.generators.close()


def load_limits(settings: Settings) -> LoadLimits:
    """Translate the ingest settings into the loaders' bounds."""
    return LoadLimits.from_settings(settings.ingest)


def build_embedder(settings: Settings) -> Embedder:
    """Load the configured embedding model (ONNX exports are cached under the data dir).

    A remote backend (``openai``) gets its own options (``RAG_EMBEDDING__OPENAI__*``).
    """
    emb = settings.embedding
    if emb.backend in REMOTE_BACKENDS:
        return create_embedder(emb.model, backend=emb.backend, **emb.openai.model_dump())
    return create_embedder(
        emb.model,
        device=emb.device,
        backend=emb.backend,
        query_backend=emb.query_backend,
        batch_tokens=emb.batch_tokens,
        cache_dir=settings.data_dir / "cache",
    )


def build_embedding_cache(settings: Settings) -> EmbeddingCache | None:
    """Open the persistent embedding cache, if enabled."""
    emb = settings.embedding
    if not emb.cache:
        return None
    return EmbeddingCache(
        settings.data_dir / "cache" / "embeddings.sqlite3", max_bytes=int(emb.cache_max_mb * MB)
    )


def build_pipeline(settings: Settings, embedder: Embedder) -> IngestPipeline:
    """Create the ingestion pipeline for the configured chunking."""
    return IngestPipeline(
        embedder,
        chunk_size=settings.ingest.chunk_size,
        chunk_overlap=settings.ingest.chunk_overlap,
        limits=load_limits(settings),
        cache=build_embedding_cache(settings),
        group_chunks=settings.ingest.embed_group_chunks,
    )


def build_store_client(settings: Settings) -> VectorStoreClient:
    """Open the configured vector store backend's client."""
    vs = settings.vectorstore
    options = getattr(vs, vs.backend).model_dump() if hasattr(vs, vs.backend) else {}
    return create_client(vs.backend, settings.data_dir, options)


def build_collections(settings: Settings, embedder: Embedder) -> CollectionService:
    """Open the configured vector store backend and make sure ``default`` exists."""
    collections = CollectionService(build_store_client(settings), embedder)
    collections.ensure_default()
    return collections


def _pgvector_jobs(settings: Settings) -> JobStore:
    from ingest.job_store_pg import PgJobStore

    pg = settings.vectorstore.pgvector
    return PgJobStore(
        pg.url,
        pg.db_schema,
        pool_size=max(4, settings.jobs.workers + 2),
        connect_timeout_s=pg.connect_timeout_s,
        keep_finished=settings.jobs.keep_finished,
    )


#: Job stores of backends with a database of their own; the others keep jobs in SQLite.
JOB_STORES = {"pgvector": _pgvector_jobs}


def build_job_store(settings: Settings) -> JobStore:
    """Open the job store in the store's database (SQLite under the data dir by default)."""
    factory = JOB_STORES.get(settings.vectorstore.backend)
    if factory is not None:
        return factory(settings)
    from ingest.job_store_sqlite import SqliteJobStore

    return SqliteJobStore(settings.data_dir / "jobs", keep_finished=settings.jobs.keep_finished)


def build_jobs(
    settings: Settings,
    documents: DocumentService,
    observer: ServiceObserver,
    workers: int | None = None,
) -> JobService:
    """The job service over the configured job store (its workers not started yet)."""
    return JobService(
        build_job_store(settings),
        documents,
        observer,
        settings.jobs,
        scratch_root=settings.data_dir / "uploads",
        workers=workers,
    )


def build_conversation_store(settings: Settings) -> ConversationStore:
    """Conversations in the store's database: PostgreSQL with pgvector, else a SQLite file."""
    vs = settings.vectorstore
    if vs.backend == "pgvector":
        from .conversation_pg import PgConversationStore

        pg = vs.pgvector
        return PgConversationStore(pg.url, pg.db_schema, connect_timeout_s=pg.connect_timeout_s)
    from .conversation_store import FILE_NAME, SQLiteConversationStore

    return SQLiteConversationStore(settings.data_dir / FILE_NAME)


def build_generators(settings: Settings, generator: Generator | None = None) -> GeneratorHolder:
    """A holder that loads the configured answering model once (or serves ``generator``)."""

    def factory() -> Generator:
        if generator is not None:
            return generator
        return create_generator(settings.llm.model_dump(), cache_dir=settings.data_dir / "models")

    bundled = generator is None and settings.llm.backend == "hf_local" and not settings.llm.model
    return GeneratorHolder(factory, settings.llm.backend, bundled=bundled)


def load_generator_at_startup(settings: Settings, generators: GeneratorHolder) -> bool:
    """Whether to load the answering model at start-up.

    Not when the default answer mode needs no model (extractive, or auto with the bundled
    model): it then loads on the first generative request, and a server that only answers
    extractively never loads (or converts, ~517 MB on a first start) it.
    """
    mode = settings.llm.answer_mode
    answers_without_model = mode == "extractive" or (mode == "auto" and generators.bundled)
    return settings.llm.load_at_startup and not answers_without_model


def build_reader(settings: Settings, embedder: Embedder) -> EvidenceReader:
    """The evidence reader: sentences scored by the embedder and BM25's word tokenizer."""
    from retrieval.bm25 import KeywordTokenizer

    return EvidenceReader(
        embedder,
        KeywordTokenizer(stopwords=True),
        sentences=settings.llm.evidence_sentences,
        follow=settings.llm.evidence_follow,
        abstain_below=settings.llm.abstain_below,
    )


def build_search(
    settings: Settings, collections: CollectionService, embedder: Embedder
) -> SearchService:
    """Create the search service: keyword indexes under ``data_dir/bm25``, the reranker."""
    from retrieval.bm25 import KeywordTokenizer
    from retrieval.keywords import KeywordIndexes
    from retrieval.rerankers import create_reranker

    retrieval = settings.retrieval
    keywords = KeywordIndexes(
        collections.get,
        KeywordTokenizer(
            stopwords=retrieval.keyword_stopwords, stemmer=retrieval.keyword_stemmer or None
        ),
        settings.data_dir / "bm25",
        check_interval_s=retrieval.keyword_check_interval_s,
    )
    return SearchService(
        collections,
        embedder,
        default_mode=retrieval.mode,
        max_top_k=retrieval.max_top_k,
        keywords=keywords,
        reranker=create_reranker(retrieval.reranker, device=settings.embedding.device),
        fusion=retrieval.fusion,
        rrf_k=retrieval.rrf_k,
        dense_weight=retrieval.dense_weight,
        keyword_weight=retrieval.keyword_weight,
        candidates=retrieval.candidates,
        rerank_candidates=retrieval.rerank_candidates,
        mmr_candidates=retrieval.mmr_candidates,
    )


def build_services(settings: Settings, components: Components | None = None) -> Services:
    """Build every component; slow (loads models), so the lifespan runs it off the loop."""
    components = components or Components()
    observer = components.observer or NullObserver()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = components.embedder or build_embedder(settings)
    collections = build_collections(settings, embedder)
    pipeline = build_pipeline(settings, embedder)
    search = build_search(settings, collections, embedder)
    collections.on_delete.append(search.keywords.drop)
    # Rebuild missing or stale keyword indexes in the background, not on the first search.
    search.keywords.warm(info.name for info in collections.list())
    documents = DocumentService(
        collections,
        pipeline,
        upload_dir=settings.data_dir / "uploads",
        max_file_bytes=int(settings.ingest.max_file_mb * MB),
        on_change=search.changed,
        on_delete=search.keywords.purge,
    )
    generators = build_generators(settings, components.generator)
    if load_generator_at_startup(settings, generators):
        generators.get()
    elif settings.llm.load_at_startup:
        generators.tokenizer()  # prompts are still counted; the bundled one loads from its GGUF
    gate = GenerationGate(settings.llm.concurrency, settings.llm.queue_size)
    observer.watch_generation_queue(lambda: gate.depth, lambda: gate.active)
    answers = AnswerService(
        search,
        generators,
        TemplateRegistry.from_settings(settings.prompts),
        gate,
        settings,
        reader=build_reader(settings, embedder),
        observer=observer,
    )
    conversations = ConversationService(
        build_conversation_store(settings),
        answers,
        generators,
        collections,
        settings.conversations,
        settings.security,
        settings.llm.answer_mode,
    )
    collections.on_delete.append(conversations.collection_deleted)
    jobs = build_jobs(settings, documents, observer)
    collections.on_delete.append(jobs.drop_collection)
    uploads = UploadService(
        collections, documents, jobs, observer, settings.security.max_files_per_request
    )
    log.info(
        "ready: embedder %s (%d-d), vector store %s at %s",
        embedder.model_name,
        embedder.dimension,
        settings.vectorstore.backend,
        settings.data_dir,
    )
    jobs.start()
    return Services(
        settings=settings,
        embedder=embedder,
        collections=collections,
        documents=documents,
        uploads=uploads,
        search=search,
        jobs=jobs,
        answers=answers,
        generators=generators,
        conversations=conversations,
    )
