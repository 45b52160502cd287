"""List the functions of the product's packages longer than a limit (80 lines by default).

Usage: python scripts/function_lengths.py [--max LINES] [ROOT]. Exits 1 when any function is
longer. A function's length runs from its ``def`` (decorators left out) to its last line,
docstring included; nested functions count within their parent and on their own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGES = ("app", "core", "ingest", "vectorstores", "retrieval", "prompts", "llms")
DEFAULT_MAX = 80


def long_functions(root: Path, most: int = DEFAULT_MAX) -> list[tuple[str, str, int]]:
    """Return ``(path, qualified name, lines)`` of every function over ``most`` lines."""
    found: list[tuple[str, str, int]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found += _visit(tree, path.relative_to(root).as_posix(), "", most)
    return found


def _visit(node: ast.AST, path: str, prefix: str, most: int) -> list[tuple[str, str, int]]:
    found: list[tuple[str, str, int]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if lines > most:
                    found.append((path, name, lines))
            found += _visit(child, path, f"{name}.", most)
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the long functions; return 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--max", type=int, default=DEFAULT_MAX, help="most lines allowed")
    args = parser.parse_args(argv)
    found = long_functions(args.root, args.max)
    for path, name, lines in found:
        print(f"{path}: {name} is {lines} lines (most {args.max})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
