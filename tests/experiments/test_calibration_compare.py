"""experiments/calibration_compare.py: calibrators fitted on a run's served validation scores,
compared the way the job measures its own calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.calibration_compare import CALIBRATORS, compare, main
from tests.conftest import ROOT

COAID = ROOT / "data/coaid-2020-05/coaid_2020-05_titles.csv"


@pytest.fixture(scope="module")
def compared(tiny_run: dict) -> dict:
    return compare(Path(tiny_run["run_dir"]), COAID)


def test_the_temperature_scores_validation_as_the_job_did(tiny_run: dict, compared: dict) -> None:
    metrics = json.loads((Path(tiny_run["run_dir"]) / "metrics.json").read_text())
    assert metrics["int8"]["val"]["calibration"] == "temperature"
    # The temperature search stops within its tolerance, so the two fits differ in the 6th digit.
    assert compared["temperature"]["val_ece_in_sample"] == pytest.approx(
        metrics["int8"]["val"]["ece"], abs=1e-4
    )
    assert compared["n"]["test"] == metrics["int8"]["test"]["n"]


def test_every_calibrator_is_scored_on_every_set(compared: dict) -> None:
    for name in CALIBRATORS:
        row = compared[name]
        for key in ("val_ece_cross_fitted", "val_ece_in_sample", "test_ece", "coaid_ece"):
            assert 0.0 <= row[key] <= 1.0, (name, key)
        assert row["test_ece_by_source"]
        for source in row["val_confidence_by_source"].values():
            assert 0.5 <= source["mean_confidence"] <= 1.0
            assert 0.0 <= source["accuracy"] <= 1.0
    # An isotonic map fits its own rows best; scored on rows it did not see, it loses that.
    assert compared["isotonic"]["val_ece_in_sample"] <= compared["isotonic"]["val_ece_cross_fitted"]


def test_the_command_writes_json_and_a_table(tiny_run: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "calibration.json"
    main([tiny_run["run_dir"], "--titles", str(COAID), "--out", str(out)])
    assert json.loads(out.read_text())[0]["run"] == tiny_run["run_dir"]
    assert "| isotonic |" in out.with_suffix(".md").read_text()
    assert "| platt |" in capsys.readouterr().out
