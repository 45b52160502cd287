"""The README's configuration table and commands stay true."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from settings_table import BEGIN, END, table  # noqa: E402


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    current = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == table(), "run: .venv/bin/python scripts/settings_table.py --write"


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
