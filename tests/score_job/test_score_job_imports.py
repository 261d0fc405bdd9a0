"""The serving core is shared code with a one-way import graph: the function and the scoring job
import it; it imports neither of them, nor the training code; the function imports no training
code and the job no other deployable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOYABLES = {"train_job", "export", "monitoring", "score_job", "functions", "experiments"}
FUNCTION_MODULES = {p.stem for p in (ROOT / "functions" / "predict").glob("*.py")}


def imported(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("packages/serving_core", DEPLOYABLES | FUNCTION_MODULES | {"prediction_log"}),
        ("functions/predict", DEPLOYABLES - {"functions"}),
        ("score_job", DEPLOYABLES - {"score_job"} | FUNCTION_MODULES),
    ],
)
def test_imports_point_one_way(folder: str, forbidden: set[str]) -> None:
    offenders = {
        path: sorted(names & forbidden)
        for path, names in imported(ROOT / folder).items()
        if names & forbidden
    }
    assert not offenders


def test_both_deployables_use_the_serving_core() -> None:
    assert any("serving_core" in n for n in imported(ROOT / "functions/predict").values())
    assert any("serving_core" in n for n in imported(ROOT / "score_job").values())
    assert not (ROOT / "functions/predict/_model.py").exists()
