"""Conversations on the pgvector backend: turns in PostgreSQL's own tables, across restarts.

A real PostgreSQL 16 + pgvector from ``pgserver`` (``tests/pg.py``), a fresh database per
test; the fake embedder and the echo generator, the rules rewrite.
"""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.app.conftest import running_app
from tests.app.test_conversations_api import (
    FIRST,
    FOLLOW_UP,
    SECRET,
    ask,
    start,
    upload_docs,
    with_conversations,
)
from tests.app.test_delete_leaves_no_text import backend_settings, files_holding
from tests.fakes import EchoGenerator, HashEmbedder
from tests.pg import PgCluster
from vectorstores.pgvector_db import SCHEMA_VERSION

pytestmark = pytest.mark.integration


def test_turns_live_in_postgres_and_survive_a_restart(
    settings: Settings, request: pytest.FixtureRequest, pg_cluster: PgCluster
) -> None:
    configured = with_conversations(backend_settings(settings, "pgvector", request))
    url = configured.vectorstore.pgvector.url
    with running_app(configured, HashEmbedder(), EchoGenerator()) as client:
        upload_docs(client)
        conversation = start(client)
        ask(client, conversation, FIRST)
    with running_app(configured, HashEmbedder(), EchoGenerator()) as client:
        body = ask(client, conversation, FOLLOW_UP)
        assert (body["turn"], body["rewrite"]) == (2, "rules")
        assert "scratch" in body["rewritten_query"]
        turns = client.get(f"/v1/conversations/{conversation}").json()["turns"]
        assert [t["question"] for t in turns] == [FIRST, FOLLOW_UP]

        import psycopg

        with psycopg.connect(url) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'ragserver'"
                )
            }
            assert {"conversations", "conversation_turns"} <= tables
            (questions,) = conn.execute(
                "SELECT count(*) FROM ragserver.conversation_turns WHERE conversation_id = %s",
                [conversation],
            ).fetchone()  # type: ignore[misc]
            assert questions == 2
            (version,) = conn.execute(
                "SELECT value FROM ragserver.meta WHERE key = 'schema_version'"
            ).fetchone()  # type: ignore[misc]
            # The conversation tables do not change the vector store's schema version.
            assert version == str(SCHEMA_VERSION)
        # Nothing of the conversation is written to ragserver's own data directory.
        assert files_holding(configured.data_dir, SECRET) == []

        assert client.delete(f"/v1/conversations/{conversation}").status_code == 204
        assert client.get(f"/v1/conversations/{conversation}").status_code == 404
        with psycopg.connect(url) as conn:
            (left,) = conn.execute(
                "SELECT count(*) FROM ragserver.conversation_turns WHERE question LIKE %s",
                [f"%{SECRET}%"],
            ).fetchone()  # type: ignore[misc]
            assert left == 0


def test_unknown_conversation_is_a_404_on_postgres(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    configured = with_conversations(backend_settings(settings, "pgvector", request))
    with running_app(configured, HashEmbedder(), EchoGenerator()) as client:
        resp = client.get("/v1/conversations/missing")
        assert resp.status_code == 404
        assert "conversation 'missing' does not exist" in resp.json()["error"]["message"]
