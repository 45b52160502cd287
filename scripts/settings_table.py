"""Print the README's configuration table, or rewrite it in place with --write."""

from __future__ import annotations

import sys
from pathlib import Path

from app.settings import describe_settings

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def table() -> str:
    """Render every setting as a markdown table."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {desc} |" for env, default, desc in describe_settings()]
    return "\n".join(lines)


def rewrite(readme: Path) -> None:
    """Replace the table between the markers in ``readme``."""
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        rewrite(Path(__file__).resolve().parent.parent / "README.md")
    else:
        print(table())
