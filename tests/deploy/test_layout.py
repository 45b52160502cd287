"""The code keeps the shape ARCHITECTURE.md describes: layers, no cycles, short functions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from scripts.function_lengths import DEFAULT_MAX, long_functions

ROOT = Path(__file__).resolve().parents[2]


def test_no_function_in_the_product_is_over_80_lines() -> None:
    assert long_functions(ROOT, DEFAULT_MAX) == []


def test_the_length_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(DEFAULT_MAX))
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "long.py").write_text(f"def long() -> None:\n{body}\n")
    assert long_functions(tmp_path, DEFAULT_MAX) == [("core/long.py", "long", DEFAULT_MAX + 1)]


def test_the_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout
