"""All configuration, read from the environment once (prefix ``RAG_``, nested with ``__``).

``RAG_VECTORSTORE__BACKEND=chroma`` sets ``settings.vectorstore.backend``. Only this module reads
the environment; everything else receives the ``Settings`` object or one of its sections.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _empty_is_none(value: object) -> object:
    """An empty environment value (``RAG_X=``) of an optional setting means its default."""
    return None if isinstance(value, str) and not value.strip() else value


class ServerSettings(BaseModel):
    """HTTP server options."""

    host: str = Field("127.0.0.1", description="Interface to bind; loopback by default.")
    port: int = Field(8000, description="TCP port to listen on.")
    workers: int = Field(1, description="Uvicorn worker processes (faiss allows only 1).")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty turns CORS off."
    )
    request_timeout_s: float = Field(120.0, description="Requests running longer are answered 504.")
    ui: bool = Field(
        True, description="Serve the web page at /ui/ (GET / redirects there); false: API only."
    )
    shutdown_timeout_s: int = Field(
        3,
        ge=1,
        description="On SIGTERM, seconds open requests get to finish before they are cut.",
    )


class IngestSettings(BaseModel):
    """How files become chunks."""

    chunk_size: int = Field(
        200, description="Chunk size in tokens of the embedding model's tokenizer."
    )
    chunk_overlap: int = Field(30, description="Tokens shared by consecutive chunks.")
    max_file_mb: float = Field(50.0, description="Largest file accepted, in MB.")
    max_pdf_pages: int = Field(2000, description="PDFs with more pages are refused.")
    max_parse_seconds: float = Field(120.0, description="Parsing one file may take this long.")
    max_decompressed_mb: float = Field(
        200.0,
        description="Largest uncompressed size of a docx, pptx, xlsx or epub (zip) file, in MB.",
    )
    max_sheet_cells: int = Field(
        1_000_000, description="Spreadsheets (xlsx) with more non-empty cells are refused."
    )
    embed_group_chunks: int = Field(
        512,
        ge=1,
        le=65_536,
        description="Chunks of consecutive files embedded in one call. Larger groups keep "
        "batches full; a background job stops between files, so on shutdown the files of "
        "the group being embedded are still stored before the job is handed back.",
    )
    ocr: bool = Field(
        True,
        description=(
            "Read PDF pages without a text layer and png/jpg/tiff files by OCR (Tesseract); "
            "off refuses image files and leaves such pages empty."
        ),
    )
    ocr_dpi: int = Field(300, ge=50, le=1200, description="Resolution PDF pages are OCR'd at.")
    ocr_max_megapixels: float = Field(
        40.0,
        gt=0,
        description=(
            "Largest image OCR'd, in megapixels: PDF pages render smaller to fit, image files "
            "over it are refused (413)."
        ),
    )
    ocr_page_seconds: float = Field(
        60.0, gt=0, description="Longest OCR of one page; the page is then reported unreadable."
    )
    ocr_language: str = Field(
        "eng", description="Tesseract language(s), e.g. eng or eng+deu (packs must be installed)."
    )
    ocr_min_text_chars: int = Field(
        20, ge=0, description="A PDF page whose text layer has fewer characters is OCR'd."
    )
    ocr_min_confidence: float = Field(
        40.0,
        ge=0,
        le=100,
        description="A page OCR'd with a lower mean word confidence (0-100) is unreadable.",
    )
    include: list[str] = Field(
        default_factory=list, description="Glob patterns a file must match (CLI ingest)."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns that skip a file (CLI ingest)."
    )


class OpenAIEmbeddingSettings(BaseModel):
    """The ``openai`` embedding backend: a remote OpenAI-compatible embeddings server."""

    base_url: str | None = Field(
        None,
        description="Embeddings server URL ending in /v1 (TEI, vLLM, Infinity, Ollama, another "
        "ragserver); empty means api.openai.com.",
    )
    api_key: str | None = Field(
        None, description="API key sent as a Bearer token; empty sends a placeholder."
    )
    _empty = field_validator("base_url", "api_key", mode="before")(_empty_is_none)
    batch_size: int = Field(64, ge=1, le=2048, description="Texts per embeddings request.")
    concurrent_requests: int = Field(
        4, ge=1, le=64, description="Embeddings requests in flight at once while ingesting."
    )
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one embeddings request.")
    max_retries: int = Field(
        2, ge=0, description="Retries of a failed request (429, 5xx, network), with backoff."
    )
    tokenizer: str = Field(
        "all-MiniLM-L6-v2",
        description="Local tokenizer that counts tokens for chunking: the bundled "
        "all-MiniLM-L6-v2's (BERT WordPiece, exact for a remote all-MiniLM-L6-v2), or a local "
        "Hugging Face tokenizer folder (or cached hub id). Where the remote model's tokenizer "
        "differs, chunk sizes are only approximate in its tokens (OpenAI's cl100k_base counts 12% "
        "more than WordPiece on the Python docs pages of tests/data): keep "
        "RAG_INGEST__CHUNK_SIZE well below MAX_INPUT_TOKENS; a chunk the remote model still "
        "finds too long fails its file's ingestion with the server's error.",
    )
    max_input_tokens: int = Field(
        512,
        ge=16,
        description="Most tokens the remote model reads (256 for all-MiniLM-L6-v2, 8191 for "
        "OpenAI's): chunk sizes above it are refused and longer queries are cut to it, both "
        "counted with TOKENIZER.",
    )


class EmbeddingSettings(BaseModel):
    """The embedding model."""

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="Model name, or a local folder; the bundled all-MiniLM-L6-v2 by default. "
        "With backend openai: the remote model's name (text-embedding-3-small, ...).",
    )
    backend: Literal["auto", "float32", "bfloat16", "onnx-float32", "onnx-int8", "openai"] = Field(
        "auto",
        description=(
            "Numeric backend for documents: float32; bfloat16 (1.7x to 2.6x faster on CPUs "
            "with AMX or AVX512-BF16, cosine 0.9999 to float32); onnx-float32 (ONNX export "
            "made once under DATA_DIR/cache/onnx, the float32 vectors); onnx-int8 (int8 ONNX "
            "export, cosine ~0.995); auto picks bfloat16 where the CPU has native bfloat16, "
            "else float32; openai embeds documents and queries through a remote "
            "OpenAI-compatible embeddings server (the openai section's settings)."
        ),
    )
    query_backend: Literal["auto", "same", "onnx-float32"] = Field(
        "auto",
        description=(
            "Backend for search queries: same (as documents) or onnx-float32 (the float32 "
            "vectors, ~2x faster for one short query; exported in a background process at "
            "start-up, queries use the documents' backend until it is ready); auto picks "
            "onnx-float32 where documents are float32 on the CPU, else same. Backend openai "
            "embeds queries remotely too, and ignores this, BATCH_TOKENS and DEVICE."
        ),
    )
    batch_tokens: int | None = Field(
        None,
        ge=1,
        description=(
            "Padded tokens per forward pass (texts are sorted by length first); empty: 2048 "
            "on the CPU (as fast as larger batches there, and hundreds of MB less memory), "
            "16384 on a GPU."
        ),
    )
    _batch_tokens_empty = field_validator("batch_tokens", mode="before")(_empty_is_none)
    device: str = Field("cpu", description="Torch device for the embedder.")
    cache: bool = Field(
        True,
        description=(
            "Keep chunk vectors in DATA_DIR/cache/embeddings.sqlite3, keyed by the hash of the "
            "embedded text, the model and the backend, so unchanged chunks are never re-embedded."
        ),
    )
    cache_max_mb: float = Field(
        2000.0,
        description="Size bound of the embedding cache in MB; least recently used vectors go.",
    )
    openai: OpenAIEmbeddingSettings = Field(
        default_factory=OpenAIEmbeddingSettings, description="The openai backend's server."
    )


class FaissSettings(BaseModel):
    """The embedded FAISS backend."""

    index: Literal["flat", "hnsw"] = Field("flat", description="flat (exact) or hnsw.")
    hnsw_m: int = Field(32, description="HNSW graph degree.")
    hnsw_ef_search: int = Field(64, description="HNSW search breadth.")
    lock_wait_s: float = Field(
        60.0,
        ge=0,
        description="Seconds serve and worker wait, logged, for a collection another process "
        "still holds (a previous server stopping) before failing; other commands do not wait.",
    )


class ChromaSettings(BaseModel):
    """The Chroma backend."""

    url: str | None = Field(
        None, description="Chroma server URL (http://host:port); empty uses embedded Chroma."
    )


class PgVectorSettings(BaseModel):
    """The PostgreSQL + pgvector backend."""

    url: str = Field(
        "",
        description=(
            "libpq URI of the database, e.g. postgresql://user:password@host:5432/ragserver "
            "(a unix socket: postgresql://user@/ragserver?host=/var/run/postgresql)."
        ),
    )
    db_schema: str = Field(
        "ragserver", description="PostgreSQL schema holding ragserver's tables (created at start)."
    )
    pool_size: int = Field(
        8, ge=1, description="Most connections to PostgreSQL open at once per process (reused)."
    )
    connect_timeout_s: int = Field(
        5,
        ge=1,
        description="Seconds to wait for a new or a free connection before answering 503.",
    )
    hnsw_m: int = Field(16, ge=2, description="HNSW graph degree of new collections' indexes.")
    hnsw_ef_construction: int = Field(
        64, ge=4, description="HNSW build breadth of new collections' indexes."
    )
    hnsw_ef_search: int = Field(
        64, ge=1, le=1000, description="HNSW search breadth (raised to top_k + 1 when larger)."
    )
    bulk_min_rows: int = Field(
        1000,
        ge=0,
        description=(
            "A write of at least this many chunks into a collection holding no more builds the "
            "HNSW index once after copying the rows (about 20x faster than row by row; the "
            "collection's searches wait for it); 0 turns this off."
        ),
    )
    maintenance_work_mem: str = Field(
        "512MB",
        pattern=r"^[0-9]+\s*(kB|MB|GB)$",
        description="PostgreSQL maintenance_work_mem for those index builds (e.g. 512MB).",
    )


class VectorStoreSettings(BaseModel):
    """Which vector store backend, and its options."""

    backend: Literal["memory", "faiss", "chroma", "pgvector"] = Field(
        "faiss", description="Vector store backend."
    )
    faiss: FaissSettings = Field(default_factory=FaissSettings, description="FAISS options.")
    chroma: ChromaSettings = Field(default_factory=ChromaSettings, description="Chroma options.")
    pgvector: PgVectorSettings = Field(
        default_factory=PgVectorSettings, description="PostgreSQL + pgvector options."
    )


class RetrievalSettings(BaseModel):
    """How chunks are retrieved for a search or a question."""

    mode: Literal["dense", "bm25", "hybrid"] = Field(
        "hybrid", description="Default mode: dense (embeddings), bm25 (keywords) or hybrid (both)."
    )
    top_k: int = Field(5, description="Default number of chunks retrieved.")
    max_top_k: int = Field(100, description="Largest top_k a request may ask for.")
    fusion: Literal["rrf", "zscore", "minmax"] = Field(
        "rrf",
        description="How hybrid mode fuses the dense and BM25 candidates: rrf (weighted reciprocal "
        "rank: rrf_k and the two weights), zscore (the sum of each list's z-scored scores, no "
        "weight to tune) or minmax (the same with min-max scaling); zscore led on the tuning "
        "halves but did not win on every confirming half (bench/results/retrieval_broad.md).",
    )
    rrf_k: int = Field(60, description="Reciprocal-rank-fusion constant (fusion=rrf).")
    dense_weight: float = Field(
        0.7,
        ge=0.0,
        description="Weight of the dense (embedding) ranking in rrf fusion (fusion=rrf only).",
    )
    keyword_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the BM25 (keyword) ranking in rrf fusion (fusion=rrf only).",
    )
    candidates: int = Field(
        50,
        ge=1,
        description="Hits the dense and the BM25 retriever each contribute to hybrid fusion.",
    )
    reranker: str | None = Field(None, description="Cross-encoder folder; empty turns it off.")
    rerank_candidates: int = Field(20, ge=1, description="Candidates the cross-encoder rescores.")
    mmr_candidates: int = Field(20, ge=1, description="Candidates MMR picks from (re-embedded).")
    keyword_stopwords: bool = Field(True, description="Drop English stop words in BM25.")
    keyword_stemmer: str | None = Field(
        None,
        description="BM25 stemmer language, e.g. english (needs `pip install PyStemmer`); "
        "empty: none (stemming did not help on the dev set).",
    )
    keyword_check_interval_s: float = Field(
        1.0,
        ge=0.0,
        description="Check for changes by other processes at most this often (seconds) "
        "before a BM25 search; 0 checks on every search.",
    )


class PromptSettings(BaseModel):
    """Prompt templates and the token budget."""

    templates_dir: Path | None = Field(
        None, description="Extra template folder; its files add to or override the built-ins."
    )
    examples_file: Path | None = Field(
        None, description="JSONL file of few-shot examples ({question, answer})."
    )
    default_strategy: str = Field("zero_shot", description="Template used when none is named.")
    overflow: Literal["drop", "truncate"] = Field(
        "truncate", description="A chunk that does not fit is dropped or cut at a sentence."
    )


class LLMSettings(BaseModel):
    """The answering model."""

    backend: Literal["hf_local", "openai"] = Field("hf_local", description="Generator backend.")
    model: str | None = Field(
        None, description="Model: a local folder or hub id (hf_local), a model name (openai)."
    )
    device: str = Field("cpu", description="cpu, cuda or auto (accelerate's device map).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype for hf_local."
    )
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none", description="bitsandbytes loading on CUDA."
    )
    max_new_tokens: int = Field(256, description="Default answer length reserve, in tokens.")
    temperature: float = Field(0.0, description="Default sampling temperature.")
    repetition_penalty: float = Field(
        1.05,
        ge=1.0,
        le=2.0,
        description="Local models: above 1 discourages loops (small models repeat greedily).",
    )
    context_window: int | None = Field(
        None, description="Override the model's context length, in tokens."
    )
    _context_window_empty = field_validator("context_window", mode="before")(_empty_is_none)
    api_key: str | None = Field(None, description="OpenAI API key (openai backend).")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL.")
    timeout_s: float = Field(60.0, description="Provider timeout in seconds.")
    max_retries: int = Field(2, description="Provider retries with backoff.")
    concurrency: int = Field(1, description="Generations run at once (hf_local).")
    queue_size: int = Field(8, description="Generations waiting; more are answered 503.")
    load_at_startup: bool = Field(
        True,
        description="Load the generator at start-up; skipped when the default answer mode needs "
        "no model (extractive, or auto with the bundled SmolLM2-135M): it then loads on the "
        "first generative request.",
    )
    answer_mode: Literal["extractive", "generative", "auto"] = Field(
        "auto",
        description="Default answer mode: extractive (the best evidence sentences, cited, no "
        "model call), generative (the model writes the answer), auto (extractive with the "
        "bundled SmolLM2-135M, generative with any other model).",
    )
    prompt_profile: Literal["auto", "compact", "full"] = Field(
        "auto",
        description="How generative answers are prompted: compact (for small instruct models: "
        "the short_answer template over only the chunks holding the best evidence, a short "
        "answer reserve, stop sequences), full (the strategy's template over every chunk that "
        "fits, max_new_tokens reserved), auto (compact with the bundled SmolLM2-135M, full with "
        "any other model). A request naming a strategy or max_tokens keeps its choice.",
    )
    compact_sources: int = Field(
        2, ge=1, le=20, description="Chunks a compact prompt holds (those of the best evidence)."
    )
    compact_max_new_tokens: int = Field(
        80, ge=1, description="Answer length reserve of a compact prompt, in tokens."
    )
    evidence_sentences: int = Field(
        4,
        ge=1,
        le=20,
        description="Evidence sentences returned with an answer (and quoted by an extractive one).",
    )
    evidence_follow: Literal["none", "lead", "always"] = Field(
        "always",
        description="Extend each evidence sentence over the unit after it in its chunk (the "
        "explanation after a signature line, the list after a colon): always, lead (only after "
        "a sentence ending in ':' or shorter than 80 characters) or none.",
    )
    abstain_below: float = Field(
        0.7774,
        ge=0.0,
        le=1.0,
        description="Answer that the documents do not say (no model call) when the calibrated "
        "confidence that the retrieved passages answer the question is below this (chosen on "
        "the tune split of three corpora: at most 5% of its answerable questions refused, "
        "bench/bench_answers_broad.py --pick-threshold); 0 never abstains.",
    )


class ConversationSettings(BaseModel):
    """Conversations: follow-up questions rewritten into standalone search queries."""

    rewrite: Literal["auto", "model", "rules", "off"] = Field(
        "auto",
        description="How a follow-up becomes a standalone search query: model (the answering "
        "model rewrites it), rules (the deterministic rewrite: the previous question's words "
        "added to a question that refers back), auto (the model when it writes the answer and "
        "is not the bundled SmolLM2-135M, else rules), off (searched as asked).",
    )
    history_turns: int = Field(
        3,
        ge=0,
        le=50,
        description="Earlier turns of a conversation given to the rewrite and, as history, "
        "to the answering model.",
    )


class SecuritySettings(BaseModel):
    """Access control and request limits."""

    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys: 'key' or 'key:collections:mode' (collections joined by '+', "
        "'*' for all; mode 'rw' or 'ro'). Comma-separated (k1,k2:docs:ro) or a JSON list; "
        "none configured leaves every route open.",
    )
    api_keys_file: Path | None = Field(
        None, description="File of API keys, one entry a line in the same format; '#' comments."
    )
    metrics_public: bool = Field(True, description="/metrics needs no key.")
    max_upload_mb: float = Field(
        200.0, gt=0, description="Largest request body (all files of an upload), in MB."
    )
    max_files_per_request: int = Field(100, ge=1, description="Most files in one upload.")
    max_question_chars: int = Field(4000, ge=1, description="Longest question accepted.")
    max_history_messages: int = Field(50, ge=0, description="Most history messages accepted.")
    rate_limit_per_minute: float = Field(
        0.0,
        ge=0,
        description="Requests a key (or, with no keys, a client address) may make per minute; "
        "0 turns the limit off.",
    )
    rate_limit_burst: int = Field(20, ge=1, description="Token-bucket burst size.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """Accept a JSON list or a comma-separated string (``k1,k2:docs:ro``)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]


class JobSettings(BaseModel):
    """Background ingestion jobs (uploads with ?wait=false), durable in the store's database."""

    workers: int = Field(
        1,
        ge=0,
        description="Jobs this process runs at once; 0: an API process takes no jobs (run "
        "`ragserver worker` for them).",
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        description="A running job's lease, renewed by its worker; another process takes the "
        "job over once it runs out (at once when the worker's process on this host is gone).",
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often an idle worker looks for jobs queued elsewhere."
    )
    shutdown_grace_s: float = Field(
        4.0,
        ge=0,
        description="On SIGTERM, seconds a running job gets to store its current file before "
        "it is handed back to the queue.",
    )
    keep_finished: int = Field(
        1000, ge=1, description="Finished jobs kept for GET /v1/jobs/{id}; older ones go."
    )


class ClientSettings(BaseModel):
    """How the ``ragserver`` command reaches a running server (``--server``, ``--api-key``)."""

    server_url: str = Field(
        "",
        description="Server the CLI's ingest, search and ask talk to over HTTP (as --server); "
        "empty opens the data directory itself.",
    )
    api_key: str = Field("", description="API key the CLI sends to that server (as --api-key).")


class TracingSettings(BaseModel):
    """OpenTelemetry traces, sent over OTLP; off unless an endpoint is set."""

    endpoint: str = Field(
        "",
        description="OTLP collector to send trace spans to (http://host:4318 for "
        "http/protobuf, http://host:4317 for grpc); empty uses OTEL_EXPORTER_OTLP_ENDPOINT, "
        "and with both empty tracing is off (no SDK loaded).",
    )
    protocol: Literal["", "http/protobuf", "grpc"] = Field(
        "",
        description="OTLP protocol; empty uses OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.",
    )
    service_name: str = Field(
        "", description="service.name of the spans; empty uses OTEL_SERVICE_NAME, else ragserver."
    )

    @model_validator(mode="after")
    def _standard_variables(self) -> TracingSettings:
        """Fill what is left empty from the standard OpenTelemetry variables."""
        env = os.environ
        self.endpoint = self.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        protocol = self.protocol or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        if protocol not in ("", "http/protobuf", "grpc"):
            raise ValueError(
                f"OTLP protocol {protocol!r} is not supported; use http/protobuf or grpc"
            )
        self.protocol = protocol or "http/protobuf"  # type: ignore[assignment]
        self.service_name = self.service_name or env.get("OTEL_SERVICE_NAME", "") or "ragserver"
        return self

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return bool(self.endpoint)


class Settings(BaseSettings):
    """Everything configurable, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Field(Path("./data"), description="Directory holding everything persisted.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Ingestion.")
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, description="Embedding model."
    )
    vectorstore: VectorStoreSettings = Field(
        default_factory=VectorStoreSettings, description="Vector store."
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="Retrieval."
    )
    prompts: PromptSettings = Field(default_factory=PromptSettings, description="Prompts.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="Answering model.")
    security: SecuritySettings = Field(
        default_factory=SecuritySettings, description="Access and limits."
    )
    jobs: JobSettings = Field(default_factory=JobSettings, description="Background jobs.")
    client: ClientSettings = Field(
        default_factory=ClientSettings, description="The CLI as a client of a running server."
    )
    conversations: ConversationSettings = Field(
        default_factory=ConversationSettings, description="Conversations and follow-ups."
    )
    tracing: TracingSettings = Field(
        default_factory=TracingSettings, description="OpenTelemetry tracing."
    )


def describe_settings(
    model: type[BaseModel] = Settings, prefix: str = "RAG_"
) -> list[tuple[str, str, str]]:
    """List every setting as (environment variable, default, description), for the README."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(describe_settings(annotation, env + "__"))
            continue
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else str(default)
        if isinstance(default, list):
            shown = ",".join(map(str, default))
        rows.append((env, shown, info.description or ""))
    return rows
