"""A BM25 keyword index over a collection's chunks, kept in step with the vector store.

The index is *derived state*: it is built with ``bm25s`` from ``store.all_chunks()`` over
``Chunk.embedding_text`` (heading path, newline, text, so headings count as
they do for the dense vectors) and stamped with the store's state. ``bm25s`` has no incremental
update, so any change to the store makes the index stale and it is rebuilt whole:

* **Stamp.** ``store_stamp(store)`` hashes the chunk count and every document record's id,
  content hash, chunk count and ``updated_at``. Ingestion always goes through
  ``replace_document``/``delete_document``, which change a record, so every ingest, replace
  and delete changes the stamp. (Raw ``upsert``/``delete`` of chunks that leaves the count and
  the records unchanged is not noticed.)
* **Versioned stores.** A store whose ``version()`` is not None (pgvector, shared by
  replicas) keeps a write counter bumped in each write's own transaction; the stamp is that
  counter, read on *every* search (one indexed row), so a write or delete through any
  replica is seen by the next keyword search everywhere, whatever ``check_interval_s``. When
  such a stamp moves, persisted versions other than the new one are removed at once, so the
  text of chunks deleted through another replica does not stay in this one's files.
* **Noticing changes.** A write through this process's ``DocumentService`` calls
  ``KeywordIndex.mark_stale()`` (and ``retrieval.keywords`` starts a rebuild in the
  background); the next search compares stamps at once. Writes by *another*
  process (several API replicas on one Chroma server, or ``ragserver ingest``) are noticed by
  comparing the stamp on search, at most once every ``check_interval_s`` seconds. The check
  costs one ``count()`` and one ``list_documents()``: a SQLite query for faiss, an HTTP round
  trip for a Chroma server, in proportion to the number of *documents*, not chunks (about
  14 ms for 369 documents on faiss on a busy 2-core machine; hence the interval, 1 s by
  default, rather than a check on every search).
* **Rebuild.** When the stamps differ, the search that noticed rebuilds the index under the
  index's lock (other searches of the collection wait, then use the new index); the rebuild
  reads and tokenizes every chunk, so it costs in proportion to the collection (about 1.5 s
  for the 13,470 chunks of the Python docs on one idle core, 3-12 s on a busy machine). The
  stamp is taken before and after reading the chunks; if a write landed in between, the index
  is kept but stamped invalid, so the next check rebuilds again.
* **Persistence.** Each rebuild is written under ``folder`` (``data_dir/bm25/<collection>``)
  as a new version folder (the bm25s arrays, the chunks, the stamp), each file fsynced, and
  then ``CURRENT`` (naming the version) is replaced atomically (temp + fsync + ``os.replace``).
  On start the persisted index is loaded if its stamp matches the store's, else rebuilt. A
  crash leaves the previous version or the new one, never a torn index. Older versions are
  removed once past a grace period (a replica reading ``CURRENT`` concurrently keeps its
  folder), and beyond the two newest at once, so bursts of writes do not pile them up.

Scores are BM25 (Lucene variant, k1=1.5, b=0.75): unbounded, higher is better, 0 means no
query term matched (such chunks are never returned).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigurationError
from core.types import Chunk, Hit, embedding_text
from retrieval.vocabulary import unknown_share as vocabulary_unknown_share
from vectorstores.base import Filter, VectorStore
from vectorstores.filters import compile_filter

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
_CHUNKS_FILE = "chunks.jsonl"
_META_FILE = "meta.json"
_GRACE_SECONDS = 120.0
_KEEP_RECENT = 2
_WORD = re.compile(r"\w+")


class KeywordTokenizer:
    """Splits text into lower-cased word tokens for BM25.

    Words are runs of letters, digits and ``_``; a word with inner underscores also yields its
    parts (``max_workers`` gives ``max_workers``, ``max``, ``workers``). English stop words
    are dropped when ``stopwords`` is true; with a ``stemmer`` language (needs PyStemmer) each
    token is stemmed (``sorting`` and ``sorted`` both become ``sort``).
    """

    def __init__(self, *, stopwords: bool = True, stemmer: str | None = None) -> None:
        """Configure the tokenizer.

        Raises:
            ConfigurationError: a stemmer is asked for but PyStemmer is not installed or does
                not know the language.
        """
        self._stem: Callable[[list[str]], list[str]] | None = None
        if stemmer:
            try:
                import Stemmer
            except ImportError as exc:
                raise ConfigurationError(
                    f"keyword stemming ({stemmer!r}) needs PyStemmer: pip install PyStemmer, "
                    "or set RAG_RETRIEVAL__KEYWORD_STEMMER to an empty value"
                ) from exc
            try:
                self._stem = Stemmer.Stemmer(stemmer).stemWords
            except KeyError as exc:
                raise ConfigurationError(
                    f"PyStemmer has no stemmer for {stemmer!r}; known: "
                    f"{', '.join(Stemmer.algorithms())}"
                ) from exc
        self._stopwords: frozenset[str] = frozenset()
        if stopwords:
            from bm25s.stopwords import STOPWORDS_EN

            self._stopwords = frozenset(STOPWORDS_EN)
        self.signature = f"v1|stopwords={stopwords}|stemmer={stemmer or ''}"

    def __call__(self, text: str) -> list[str]:
        """Return the tokens of ``text`` in order (repeats kept: BM25 counts them)."""
        tokens: list[str] = []
        for word in _WORD.findall(text.lower()):
            if word in self._stopwords:
                continue
            tokens.append(word)
            if "_" in word.strip("_"):
                tokens.extend(p for p in word.split("_") if p and p not in self._stopwords)
        return self._stem(tokens) if self._stem is not None and tokens else tokens


def store_stamp(store: VectorStore) -> str:
    """Return a token of the store's state that changes with every ingest and delete.

    The store's own ``version()`` when it keeps one (pgvector: a counter moved in each write's
    transaction), else a digest of the chunk count and the document records.
    """
    version = store.version()
    if version is not None:
        return f"version:{version}"
    digest = hashlib.sha256(f"{store.count()}\n".encode())
    for record in sorted(store.list_documents(), key=lambda r: r.id):
        digest.update(
            f"{record.id}\t{record.content_hash}\t{record.chunk_count}\t"
            f"{record.updated_at!r}\n".encode()
        )
    return digest.hexdigest()


class BM25Index:
    """An immutable BM25 index over a list of chunks, with the stamp it was built at."""

    def __init__(self, chunks: Sequence[Chunk], model: Any, stamp: str, signature: str) -> None:
        """Wrap a built ``bm25s.BM25`` (or ``None`` for an empty index); see ``build``."""
        self.chunks = list(chunks)
        self.stamp = stamp
        self.signature = signature
        self._model = model
        self._ids = np.array([c.id for c in self.chunks], dtype=object)
        self._vocabulary: list[str] | None = None  # sorted, built on the first unknown_share

    @classmethod
    def build(cls, chunks: Sequence[Chunk], tokenizer: KeywordTokenizer, stamp: str) -> BM25Index:
        """Tokenize ``embedding_text`` of every chunk and index it."""
        if not chunks:
            return cls([], None, stamp, tokenizer.signature)
        import bm25s

        model = bm25s.BM25()
        corpus = [tokenizer(embedding_text(chunk)) for chunk in chunks]
        model.index(corpus, show_progress=False)
        return cls(chunks, model, stamp, tokenizer.signature)

    def __len__(self) -> int:
        return len(self.chunks)

    def unknown_share(self, tokens: Sequence[str]) -> float:
        """The share of the question's asked-about ``tokens`` that no indexed chunk holds.

        A question naming something the collection never mentions (another product, a tool
        it does not document) has words outside its vocabulary; the answer reader uses this
        to abstain. Counted by ``retrieval.vocabulary.unknown_share`` (inflections known,
        function words left out); an empty index knows no word (1.0).
        """
        if self._vocabulary is None:
            self._vocabulary = sorted(self._model.vocab_dict) if self._model is not None else []
        return vocabulary_unknown_share(tokens, self._vocabulary)

    def search(
        self,
        tokens: Sequence[str],
        top_k: int,
        filter: Filter | None = None,
    ) -> list[Hit]:
        """Return up to ``top_k`` chunks with a positive BM25 score, best first.

        The filter is applied to every chunk's metadata before ranking, so ``top_k`` hits come
        back whenever that many matching chunks contain a query term. Ties go to the smaller
        chunk id.
        """
        if self._model is None or top_k <= 0:
            return []
        ids = self._model.get_tokens_ids(list(tokens))
        if not ids:
            return []
        scores = np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float64)
        if filter:
            predicate = compile_filter(filter)
            keep = np.fromiter(
                (predicate(c.metadata) for c in self.chunks), dtype=bool, count=len(self.chunks)
            )
            scores = np.where(keep, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size > top_k:
            # Everything tied with the k-th score is kept, so the id tie-break is exact.
            kth = np.partition(scores[positive], positive.size - top_k)[positive.size - top_k]
            positive = positive[scores[positive] >= kth]
        order = sorted(positive.tolist(), key=lambda i: (-scores[i], self._ids[i]))[:top_k]
        return [Hit(self.chunks[i], float(scores[i]), "bm25") for i in order]

    # -- persistence ---------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write this index as a new version under ``folder`` and make it ``CURRENT``."""
        folder.mkdir(parents=True, exist_ok=True)
        version = f"v-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        tmp = folder / f".tmp-{version}"
        tmp.mkdir()
        try:
            if self._model is not None:
                self._model.save(str(tmp), show_progress=False)
            with (tmp / _CHUNKS_FILE).open("w", encoding="utf-8") as out:
                for chunk in self.chunks:
                    row = [chunk.id, chunk.document_id, chunk.text, chunk.metadata]
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            meta = {
                "format": FORMAT_VERSION,
                "stamp": self.stamp,
                "signature": self.signature,
                "chunks": len(self.chunks),
                "empty": self._model is None,
            }
            (tmp / _META_FILE).write_text(json.dumps(meta), encoding="utf-8")
            for path in tmp.iterdir():
                _fsync_file(path)
            _fsync_dir(tmp)
            os.replace(tmp, folder / version)
            _fsync_dir(folder)
            _write_atomic(folder / CURRENT_FILE, json.dumps({"version": version}))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _remove_old_versions(folder, keep=version)

    @classmethod
    def load(cls, folder: Path) -> BM25Index | None:
        """Load the ``CURRENT`` version under ``folder``; None if absent or unreadable."""
        try:
            version = json.loads((folder / CURRENT_FILE).read_text(encoding="utf-8"))["version"]
            path = folder / str(version)
            meta = json.loads((path / _META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT_VERSION:
                return None
            chunks: list[Chunk] = []
            with (path / _CHUNKS_FILE).open(encoding="utf-8") as rows:
                for line in rows:
                    chunk_id, document_id, text, metadata = json.loads(line)
                    chunks.append(Chunk(chunk_id, document_id, text, metadata))
            model = None
            if not meta.get("empty"):
                import bm25s

                model = bm25s.BM25.load(str(path), show_progress=False)
            if len(chunks) != meta.get("chunks"):
                return None
            return cls(chunks, model, str(meta["stamp"]), str(meta["signature"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not isinstance(exc, FileNotFoundError):
                logger.warning("keyword index under %s is unreadable (%s); rebuilding", folder, exc)
            return None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _remove_old_versions(folder: Path, keep: str) -> None:
    """Prune old index versions, keeping ``keep``, the ``CURRENT`` one and two recent others.

    Another version goes once past the grace period (a replica may be loading it) or when two
    newer ones exist; a temp folder goes once past the grace period (a replica may be writing
    it). A replica that loses a version it was about to load rebuilds instead.
    """
    try:
        current = json.loads((folder / CURRENT_FILE).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        current = keep
    cutoff = time.time() - _GRACE_SECONDS

    def expired(entry: Path) -> bool:
        try:
            return entry.stat().st_mtime < cutoff
        except OSError:
            return False

    versions = sorted(
        (e for e in folder.glob("v-*") if e.is_dir() and e.name not in (keep, current)),
        key=lambda e: e.name,  # names start with a timestamp
        reverse=True,
    )
    for rank, entry in enumerate(versions):
        if rank >= _KEEP_RECENT or expired(entry):
            shutil.rmtree(entry, ignore_errors=True)
    for entry in folder.glob(".tmp-*"):
        if entry.is_dir() and expired(entry):
            shutil.rmtree(entry, ignore_errors=True)


def _remove_versions_except(folder: Path, keep: str | None) -> None:
    """Remove every index version and temp folder but ``keep`` at once (no grace period).

    With ``keep`` None, ``CURRENT`` goes too, so the next open rebuilds from the store.
    """
    if not folder.is_dir():
        return
    for entry in [*folder.glob("v-*"), *folder.glob(".tmp-*")]:
        if entry.is_dir() and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
    if keep is None:
        (folder / CURRENT_FILE).unlink(missing_ok=True)


class KeywordIndex:
    """The BM25 index of one open collection, rebuilt whenever the store has changed.

    Thread-safe: searches of one collection share one immutable ``BM25Index``; a stale index
    is rebuilt by one thread while the others wait for it (see the module docstring).
    """

    def __init__(
        self,
        store: VectorStore,
        tokenizer: KeywordTokenizer,
        folder: Path | None = None,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind the index to ``store``; nothing is read until ``refresh`` or ``search``.

        Args:
            store: The collection.
            tokenizer: How chunks and queries are tokenized.
            folder: Where the index is persisted (``data_dir/bm25/<collection>``); None keeps
                it in memory only.
            check_interval_s: Compare the store's stamp at most this often on search (0: on
                every search). Writes reported through ``mark_stale`` are noticed at once.
            clock: Monotonic time source (tests).
        """
        self.store = store
        self.tokenizer = tokenizer
        self.folder = folder
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._index: BM25Index | None = None
        self._stale = True
        self._checked_at = float("-inf")
        self.rebuilds = 0

    def mark_stale(self) -> None:
        """Report a write to the store: the next search compares stamps whatever the interval."""
        self._stale = True

    def refresh(self, *, force_check: bool = True) -> BM25Index:
        """Bring the index up to date with the store and return it.

        Args:
            force_check: Compare stamps now; if False, only when the index was marked stale
                or ``check_interval_s`` has passed since the last check.
        """
        with self._lock:
            index = self._index
            due = self._clock() - self._checked_at >= self.check_interval_s
            version = self.store.version()  # cheap where kept: checked on every search
            if index is not None and version is None and not (force_check or self._stale or due):
                return index
            self._stale = False
            stamp = f"version:{version}" if version is not None else store_stamp(self.store)
            self._checked_at = self._clock()
            if index is not None and index.stamp == stamp:
                return index
            # At start, or when another replica has rebuilt already, the persisted version
            # may match the store.
            index = self._load_matching(stamp) if self.folder is not None else None
            if index is None:
                index = self._rebuild(stamp)
            self._index = index
            if version is not None and self.folder is not None:
                self._keep_only_current()  # no older copy of deleted chunks' text stays
            return index

    def _keep_only_current(self) -> None:
        assert self.folder is not None
        try:
            current = json.loads((self.folder / CURRENT_FILE).read_text("utf-8"))["version"]
        except (OSError, ValueError, KeyError):
            current = None
        _remove_versions_except(self.folder, None if current is None else str(current))

    def purge(self) -> None:
        """Rebuild from the store now and delete every older persisted version at once.

        After a delete, no copy of the deleted chunks' text may stay on disk: the versions
        kept for other replicas' sake (``_remove_old_versions``) are removed here without
        waiting, and a replica that was about to load one rebuilds instead.
        """
        with self._lock:
            index = self._rebuild(store_stamp(self.store))
            self._index = index
            self._stale = False
            self._checked_at = self._clock()
            if self.folder is not None:
                if index.stamp:  # saved: CURRENT names it
                    self._keep_only_current()
                else:
                    _remove_versions_except(self.folder, None)

    def _load_matching(self, stamp: str) -> BM25Index | None:
        assert self.folder is not None
        loaded = BM25Index.load(self.folder)
        if (
            loaded is not None
            and loaded.stamp == stamp
            and loaded.signature == self.tokenizer.signature
        ):
            return loaded
        return None

    def _rebuild(self, stamp: str) -> BM25Index:
        started = time.perf_counter()
        chunks = self.store.all_chunks()
        after = store_stamp(self.store)
        index = BM25Index.build(chunks, self.tokenizer, stamp if after == stamp else "")
        self.rebuilds += 1
        logger.info(
            "keyword index of '%s' rebuilt: %d chunks in %.2f s",
            self.store.name,
            len(chunks),
            time.perf_counter() - started,
        )
        if self.folder is not None and index.stamp:
            try:
                index.save(self.folder)
            except OSError:
                logger.exception("could not persist the keyword index of '%s'", self.store.name)
        return index

    def search(self, query: str, top_k: int, filter: Filter | None = None) -> list[Hit]:
        """Return up to ``top_k`` chunks matching ``query``'s words, best BM25 score first."""
        index = self.refresh(force_check=False)
        return index.search(self.tokenizer(query), top_k, filter)
