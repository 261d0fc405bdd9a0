"""The product's import graph (tools/import_graph.py): no module imports itself in a circle, none
is too long to read in one sitting, export never reaches back into the training code, and the
picture in docs/architecture.md is the graph as it is now."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tools import import_graph

MAX_LINES = 500


def test_no_import_cycle_among_product_modules() -> None:
    """Function-level imports count: deferring an import hides a circle, it does not remove it."""
    assert import_graph.cycles(all_imports=True) == []


def test_no_product_module_is_over_500_lines() -> None:
    too_long = {
        str(module.path.relative_to(ROOT)): n
        for module in import_graph.product_modules().values()
        if (n := len(module.path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_export_never_imports_the_training_code() -> None:
    """The bundle's writer takes plain values; the arrow runs train_job -> export only."""
    assert ("export", "train_job") not in import_graph.unit_arrows()
    assert ("train_job", "export") in import_graph.unit_arrows()


def test_the_architecture_page_shows_the_graph_as_it_is() -> None:
    """`make import-graph` rewrites the block when an arrow is added or removed."""
    page = (ROOT / "docs/architecture.md").read_text()
    assert import_graph.replace_block(page, import_graph.mermaid()) == page


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_see_cycles_in_functions_relative_imports_and_folder_arrows(
    tmp_path: Path,
) -> None:
    root = _tree(
        tmp_path,
        {
            "train_job/__init__.py": "",
            "train_job/a.py": "from train_job import b\nfrom export.bundle import x\n",
            "train_job/b.py": "def f():\n    from . import a\n",
            "export/__init__.py": "",
            "export/bundle.py": "import json\nfrom serving_core.model import Model\n",
            "functions/predict/main.py": "from _errors import E\nimport serving_core\n",
            "functions/predict/_errors.py": "",
            "packages/serving_core/pyproject.toml": "",
            "packages/serving_core/serving_core/__init__.py": "",
            "packages/serving_core/serving_core/model.py": "from .__init__ import *\n",
        },
    )
    assert import_graph.cycles(root) == []  # the only circle closes inside a function
    assert import_graph.cycles(root, all_imports=True) == [["train_job.a", "train_job.b"]]
    assert import_graph.unit_arrows(root) == [
        ("export", "packages/serving_core"),
        ("functions/predict", "packages/serving_core"),
        ("train_job", "export"),
    ]
    graph = import_graph.mermaid(root)
    assert graph.startswith("```mermaid\ngraph LR\n") and graph.endswith("\n```")
    assert '  functions_predict["functions/predict"]' in graph
    assert "  train_job --> export" in graph


def test_the_block_between_the_markers_is_replaced_and_the_rest_kept() -> None:
    page = f"intro\n{import_graph.START}\nold\n{import_graph.END}\nafter\n"
    assert import_graph.replace_block(page, "new") == (
        f"intro\n{import_graph.START}\nnew\n{import_graph.END}\nafter\n"
    )
