"""testing/ is shared by the tests and the benchmarks: it never imports either (nor experiments),
and product code never imports it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["train_job", "export", "functions", "monitoring", "score_job", "packages", "tools"]


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_testing_imports_no_tests_benchmarks_or_experiments() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in sorted((ROOT / "testing").rglob("*.py"))
        if (bad := imported_packages(path) & {"tests", "benchmarks", "experiments"})
    }
    assert not offenders


def test_product_code_never_imports_testing() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in PRODUCT
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "testing" in imported_packages(path)
    ]
    assert not offenders
