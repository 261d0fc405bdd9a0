"""experiments/ensemble_ceiling.py: blend weights chosen on validation, test only scored."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments.ensemble_ceiling import best_blend, log_odds, weighted_f1

ROOT = Path(__file__).resolve().parents[2]


def test_blend_weight_is_chosen_on_validation_even_when_test_would_prefer_another() -> None:
    # Validation: the base model is wrong on posts 0-3, the extra model fixes them.
    val_y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    val_base = np.array([-1.0, -1, -1, -1, -2, -2, -2, -2, 2, -2])
    val_extra = np.array([3.0, 3, 3, 3, 0, 0, 0, 0, 0, 0])
    # Test: the extra model is wrong and any weight > 0 hurts.
    test_y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    test_base = np.array([-1.0, -1, -1, -1, 2, 2, 2, 2, -2, 2])
    test_extra = np.array([3.0, 3, 3, 3, 0, 0, 0, 0, 0, 0])

    blend = best_blend((val_base, test_base), (val_extra, test_extra), val_y, test_y)

    weight = blend["weight"]
    assert weight > 0.3  # -1 + 3a >= 0: the val posts need a weight of at least 1/3
    assert blend["val_weighted_f1"] == 1.0
    assert blend["test_weighted_f1"] == weighted_f1(test_y, test_base + weight * test_extra)
    assert blend["test_weighted_f1"] < weighted_f1(test_y, test_base)  # reported, not hidden


def test_ties_keep_the_smallest_weight() -> None:
    y = np.array([1, 0, 1, 0])
    base = np.array([2.0, -2, 2, -2])
    blend = best_blend((base, base), (np.zeros(4), np.zeros(4)), y, y)
    assert blend["weight"] == 0.0


def test_log_odds_round_trips_probabilities_and_stays_finite() -> None:
    p = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    z = log_odds(p)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(1 / (1 + np.exp(-z[1:4])), p[1:4], rtol=1e-9)


def test_missing_results_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "experiments.ensemble_ceiling", str(tmp_path / "no.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "no such results file" in done.stderr
    assert "Traceback" not in done.stderr
