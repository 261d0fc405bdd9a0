"""Calibration on validation (train_job/evaluate.py): one temperature, or an isotonic map of the
margin whose validation ECE is measured on rows it was not fitted on."""

from __future__ import annotations

import numpy as np
import pytest

from serving_core.calibration import positive_probability
from train_job.evaluate import (
    Calibration,
    classification_metrics,
    expected_calibration_error,
    fit_calibration,
    isotonic_map,
)


def _two_kinds_of_text(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Half the rows overconfident (true P(fake) = sigmoid(margin / 4)), half underconfident
    (sigmoid(4 * margin)), at different margins: no single temperature fits both."""
    rng = np.random.default_rng(seed)
    margins = np.concatenate([rng.normal(0, 6, n // 2), rng.normal(0, 0.6, n // 2)])
    scale = np.concatenate([np.full(n // 2, 0.25), np.full(n // 2, 4.0)])
    labels = (rng.random(n) < 1 / (1 + np.exp(-margins * scale))).astype(int)
    return np.stack([np.zeros(n), margins], axis=1), labels


def test_the_isotonic_map_is_monotone_and_never_certain() -> None:
    logits, labels = _two_kinds_of_text(2000, seed=0)
    fitted = isotonic_map(logits[:, 1], labels)
    assert np.all(np.diff(fitted["margins"]) > 0) and np.all(np.diff(fitted["p_fake"]) >= 0)
    assert fitted["p_fake"][0] > 0 and fitted["p_fake"][-1] < 1


def test_the_map_beats_one_temperature_on_rows_neither_was_fitted_on() -> None:
    val_logits, val_labels = _two_kinds_of_text(4000, seed=1)
    test_logits, test_labels = _two_kinds_of_text(4000, seed=2)
    temperature = fit_calibration(val_logits, val_labels, "temperature")
    isotonic = fit_calibration(val_logits, val_labels, "isotonic")
    assert temperature.map is None and temperature.val_ece_cross_fitted is None
    assert isotonic.temperature == temperature.temperature  # kept, for the record
    ece = {
        name: expected_calibration_error(cal.p_fake(test_logits), test_labels)
        for name, cal in (("temperature", temperature), ("isotonic", isotonic))
    }
    assert ece["isotonic"] < ece["temperature"] / 2
    # Scored on the rows it was fitted on, the map looks better than it is; the reported
    # validation ECE is the cross-fitted one, close to what unseen rows give.
    in_sample = expected_calibration_error(isotonic.p_fake(val_logits), val_labels)
    assert in_sample < isotonic.val_ece_cross_fitted
    assert isotonic.val_ece_cross_fitted == pytest.approx(ece["isotonic"], abs=0.02)


def test_metrics_and_the_served_probability_agree_on_the_map() -> None:
    logits, labels = _two_kinds_of_text(1000, seed=3)
    cal = fit_calibration(logits, labels, "isotonic")
    served = positive_probability(logits[:, 1] - logits[:, 0], cal.section)
    assert np.array_equal(cal.p_fake(logits), served)
    metrics = classification_metrics(logits, labels, cal, threshold=0.5)
    assert metrics["calibration"] == "isotonic"
    assert metrics["accuracy"] == pytest.approx(((served >= 0.5) == labels).mean())
    assert classification_metrics(logits, labels, Calibration(2.0))["calibration"] == "temperature"


def test_an_unknown_method_is_refused() -> None:
    logits, labels = _two_kinds_of_text(100, seed=4)
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibration(logits, labels, "platt")
