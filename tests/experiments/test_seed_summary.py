"""experiments/seed_summary.py: the median over seeds, from the job's own results files."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A results file written by the train job itself (no weights in it): the shape to follow.
TEMPLATE = json.loads((ROOT / "reports" / "archive" / "train_full_linkaug_seed42.json").read_text())


def results_for(seed: int, official_f1: float, ece_after: float) -> dict:
    results = copy.deepcopy(TEMPLATE)
    results["command"] = results["command"].replace("--seed=42", f"--seed={seed}")
    results["metrics"]["int8"]["test_official"]["weighted_f1"] = official_f1
    results["trust"]["calibration"]["ece_after"] = ece_after
    return results


def run_summary(tmp_path: Path, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "experiments.seed_summary"),
            *map(str, files),
            "--out",
            str(tmp_path / "summary"),
            "--no-behaviour",  # the template's bundle is not in this checkout's store
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_targets_are_checked_on_the_median_not_the_best_seed(tmp_path):
    files = []
    for seed, f1, ece in [(1, 0.980, 0.015), (2, 0.968, 0.030), (3, 0.972, 0.018)]:
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(results_for(seed, f1, ece)))
        files.append(path)
    done = run_summary(tmp_path, files)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["seed"] for row in summary["seeds"]] == [1, 2, 3]
    f1 = summary["verdicts"]["int8_weighted_f1_official_test_median"]
    assert f1["measured"] == 0.972 and f1["met"] is False  # seed 1 alone would pass
    ece = summary["verdicts"]["ece_after_median"]
    assert ece["measured"] == 0.018 and ece["met"] is True
    assert "| 1 |" in (tmp_path / "summary.md").read_text()


def test_a_missing_results_file_is_a_clear_error(tmp_path):
    done = run_summary(tmp_path, [tmp_path / "nope.json"])
    assert done.returncode == 2
    assert "missing results files" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_seed_bundle_gets_the_behavioural_tests(tmp_path, tiny_run, tiny_store):
    # A results file pointing at a bundle in a local store: the tiny random model, which has no
    # reason to pass the behavioural tests; the summary must say which ones failed.
    results = copy.deepcopy(TEMPLATE)
    results["version"] = tiny_run["version"]
    results["command"] = results["command"].replace("--store=local/store", f"--store={tiny_store}")
    path = tmp_path / "seed42.json"
    path.write_text(json.dumps(results))
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "experiments.seed_summary"),
            str(path),
            "--out",
            str(tmp_path / "summary"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    behaviour = json.loads((tmp_path / "summary.json").read_text())["seeds"][0]["behaviour"]
    assert behaviour["passed"] + len(behaviour["failed"]) == 10
    assert behaviour["failed"], "a random tiny model passed every behavioural test"


def test_runs_over_several_sources_answer_to_the_multi_source_targets(tmp_path):
    files = []
    for seed, val_ece in [(1, 0.015), (2, 0.03), (3, 0.019)]:
        results = results_for(seed, 0.95, 0.02)
        results["rows_by_source"] = {
            "posts": {"train": 600, "val": 50, "test": 50},
            "headlines": {"train": 400, "val": 50, "test": 50},
        }
        results["metrics"]["int8"]["val"]["ece"] = val_ece
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(results))
        files.append(path)
    done = run_summary(tmp_path, files)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = summary["verdicts"]
    assert verdicts["val_ece_median"] == {"measured": 0.019, "target": "<= 0.02", "met": True}
    assert verdicts["int8_weighted_f1_official_test_median"]["target"] == ">= 0.97"
    assert "cross_source_real_called_fake_median" in verdicts
    row = summary["seeds"][0]  # 1,000 rows over the history's epochs at the run's speed
    epochs = len(TEMPLATE["train"]["history"])
    speed = TEMPLATE["train"]["examples_per_second"]
    assert row["training_minutes"] == pytest.approx(1000 * epochs / speed / 60)
