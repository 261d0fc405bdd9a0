"""Fixtures for the Terraform checks: a scratch copy of terraform/ to plant mistakes in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"


@pytest.fixture
def terraform_copy(tmp_path: Path) -> Path:
    """tmp/terraform (a copy) next to tmp/sql: `${path.module}/../sql` resolves as in the repo."""
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    return copy


def plant(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` (fails if the configuration no longer has it)."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    path.write_text(text.replace(old, new))
