"""A benchmark's report: the numbers as JSON and the Markdown made from them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(
    report: dict[str, Any], out: Path, write_markdown: Callable[[dict[str, Any], Path], None]
) -> None:
    """out.json (the numbers) and out.md (the report made from them); prints the report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())
