"""experiments/source_recipes.py: recipes compared source by source on validation; test and CoAID
columns are shown, never read to choose."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from experiments.source_recipes import chosen, main, markdown, recipe_row

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reports/train_quick_multisource.json"


def _results() -> dict:
    return json.loads(RESULTS.read_text())


def test_a_committed_results_file_gives_every_source_its_validation_row() -> None:
    results = _results()
    row = recipe_row("chosen", results)
    val = results["by_source"]["model_val"]
    assert set(row["val_by_source"]) == set(val)
    assert row["val_worst_source_weighted_f1"] <= row["val_source_mean_weighted_f1"]
    assert row["train_rows"] == sum(r["train"] for r in results["rows_by_source"].values())


def test_the_best_validation_recipe_wins_even_when_test_and_coaid_prefer_another() -> None:
    good_val = _results()
    good_test = copy.deepcopy(good_val)
    for metrics in good_test["by_source"]["model_val"].values():
        metrics["weighted_f1"] -= 0.05
    good_test["by_source"]["model"]["official_test"]["weighted_f1"] = 0.99
    good_test["trust"]["cross_source"]["roc_auc"] = 0.99
    rows = [recipe_row("good_test", good_test), recipe_row("good_val", good_val)]
    assert chosen(rows) == "good_val"
    assert "**good_val** (best on validation)" in markdown(rows)


def test_the_command_writes_the_table_and_its_rows(tmp_path: Path) -> None:
    main([f"a={RESULTS}", f"b={RESULTS}", "--out", str(tmp_path / "t.md")])
    # One table row per results file under the header.
    assert (tmp_path / "t.md").read_text().count("\n| ") == 2
    assert len(json.loads((tmp_path / "t.json").read_text())) == 2
