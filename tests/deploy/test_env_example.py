""".env.example: generated from the settings, complete, and every value in it reads back."""

from __future__ import annotations

import os
import re

import pytest

from app.settings import Settings, describe_settings
from tests.deploy import deployfiles as df

env_example = df.load_script("env_example")
ASSIGNMENT = re.compile(r"^# [A-Z][A-Z0-9_]*=")
HEADING = re.compile(r"^# (----|====) ")


def settings_with(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    """Settings from exactly ``values`` (no other RAG_* variable, no .env file)."""
    for name in os.environ:
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_is_in_step_with_the_settings() -> None:
    assert df.ENV_EXAMPLE.read_text() == env_example.render(), (
        "run: .venv/bin/python scripts/env_example.py --write"
    )


def test_documents_every_setting_once_with_its_default_and_description() -> None:
    listed = df.env_example_assignments("every setting")
    assert [name for name, _ in listed] == [env for env, _, _ in describe_settings()]
    lines = df.ENV_EXAMPLE.read_text().splitlines()
    for env, default, description in describe_settings():
        value = dict(listed)[env]
        assert value == default or value.startswith("["), env  # lists are written as JSON
        at = lines.index(f"# {env}={value}")
        comment: list[str] = []
        for line in reversed(lines[:at]):
            if not line.startswith("# ") or ASSIGNMENT.match(line) or HEADING.match(line):
                break
            comment.insert(0, line.removeprefix("# "))
        assert description in " ".join(comment), env


def test_names_only_real_settings() -> None:
    known = {env for env, _, _ in describe_settings()}
    named = {name for name, _ in df.env_example_assignments() if name.startswith("RAG_")}
    assert named <= known, named - known


def test_uncommenting_a_default_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = settings_with(monkeypatch).model_dump()
    for name, value in df.env_example_assignments("every setting"):
        if value == "":
            continue  # unset by default: an empty value is a different setting
        assert settings_with(monkeypatch, **{name: value}).model_dump() == defaults, name


def test_compose_fixed_settings_are_the_ones_compose_sets() -> None:
    compose_env = {k for k in df.service_env("api") if k.startswith("RAG_")}
    assert set(env_example.COMPOSE_FIXED) == compose_env


def test_pgvector_compose_fixed_settings_are_the_ones_it_sets() -> None:
    compose_env = {k for k in df.service_env("api", df.COMPOSE_PGVECTOR) if k.startswith("RAG_")}
    assert set(env_example.PGVECTOR_COMPOSE_FIXED) == compose_env
