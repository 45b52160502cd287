"""The memory backend under the shared contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vectorstores.contract import VectorStoreContract
from vectorstores.base import VectorStoreClient
from vectorstores.memory import MemoryClient


class TestMemoryContract(VectorStoreContract):
    @pytest.fixture
    def client(self, data_dir: Path) -> Iterator[VectorStoreClient]:
        client = MemoryClient(data_dir)
        yield client
        client.close()
