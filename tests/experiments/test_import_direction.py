"""Experiments may import product code; product code, tools and benchmarks never import them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_EXPERIMENTS = [
    "train_job",
    "export",
    "functions",
    "monitoring",
    "tools",
    "benchmarks",
    "testing",
]


def imported_packages(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_import_check_sees_both_import_forms() -> None:
    assert imported_packages("import experiments.x\nfrom experiments import y") == {"experiments"}


def test_nothing_outside_experiments_imports_them() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in NOT_EXPERIMENTS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "experiments" in imported_packages(path.read_text())
    ]
    assert not offenders, f"import experiments: {offenders}"
