"""experiments/run_titles.py: a run without a bundle scored on a title file by the served rule,
the same numbers the trust report gives the bundle when there is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.run_titles import score_run
from tests.conftest import ROOT

COAID = ROOT / "data/coaid-2020-05/coaid_2020-05_titles.csv"


def test_a_runs_onnx_scores_coaid_as_its_bundles_trust_report_does(tiny_run: dict) -> None:
    scored = score_run(Path(tiny_run["run_dir"]), COAID, max_length=64)
    report = tiny_run["trust"]["cross_source"]
    assert scored["int8"]["n"] == report["n"]
    # Equal up to the int8 model's batch company: its activation scale is one per batch, and the
    # trust report runs a repeated title once, so the two batch the titles differently.
    assert scored["int8"]["roc_auc"] == pytest.approx(report["roc_auc"], abs=3e-3)
    assert scored["int8"]["real_called_fake_share"] == pytest.approx(
        report["real_called_fake_share"], abs=3e-3
    )
    assert 0.0 <= scored["fp32"]["roc_auc"] <= 1.0


def test_a_run_calibrated_by_a_map_is_refused(tiny_run: dict, tmp_path: Path) -> None:
    metrics = json.loads((Path(tiny_run["run_dir"]) / "metrics.json").read_text())
    metrics["int8"]["val"]["calibration"] = "isotonic"
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="only its bundle keeps"):
        score_run(tmp_path, COAID, max_length=64)
