"""Test-wide set-up: offline models, and every data directory under the test's tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from tests.pg import PgCluster

# Property tests are judged by their examples, not by the speed of a shared machine: no
# per-example deadline and no "too slow" health check (a test's own @settings adds to this).
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")

# Nothing may come from the Hugging Face hub; models load from installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ui-screenshots",
        default=None,
        help="Folder for the web page tests' screenshots (docs/ refreshes the README's); "
        "default: each test's tmp_path.",
    )


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point RAG_DATA_DIR at the test's own folder, so no test touches ./data."""
    data_dir = tmp_path / "ragdata"
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from ingest.embedders import create_embedder

    return create_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A real PostgreSQL 16 + pgvector (the pgserver wheel), started once per test session."""
    from tests.pg import PgCluster

    cluster = PgCluster()
    try:
        yield cluster
    finally:
        cluster.close()
