"""CONTRIBUTING.md's "Adding a log column" stays true: every column of the prediction-log schema
is in each file that section names, and no other product file spells out every column (a place
a new column would be forgotten)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("sql", "functions", "packages", "monitoring", "score_job", "export", "terraform")
TEXT_SUFFIXES = {".py", ".sql", ".json", ".tf"}


def _section_files() -> list[Path]:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text.split("## Adding a log column", 1)[1].split("\n## ", 1)[0]
    return [ROOT / p for p in re.findall(r"^- `([^`]+)`", section, flags=re.M)]


def _schema_file(files: list[Path]) -> Path:
    return next(f for f in files if f.name.endswith(".schema.json"))


def _columns(files: list[Path]) -> list[str]:
    return [c["name"] for c in json.loads(_schema_file(files).read_text())]


def test_every_column_is_in_each_file_the_section_names() -> None:
    files = _section_files()
    assert len(files) >= 4 and all(f.is_file() for f in files), files
    columns = _columns(files)
    for path in files:
        text = path.read_text()
        missing = [c for c in columns if not re.search(rf"\b{c}\b", text)]
        assert not missing, f"{path.relative_to(ROOT)} lacks {missing}"


def test_no_other_product_file_spells_out_every_column() -> None:
    files = _section_files()
    columns = _columns(files)
    named = {f.resolve() for f in files}
    others = []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path.resolve() in named:
                continue
            if any(part.startswith(".") or part.endswith(".egg-info") for part in path.parts):
                continue
            text = path.read_text(errors="replace")
            if all(re.search(rf"\b{c}\b", text) for c in columns):
                others.append(str(path.relative_to(ROOT)))
    assert not others, f"files that list every log column but are not in CONTRIBUTING: {others}"
