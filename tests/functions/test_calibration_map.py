"""P(fake) from a manifest's calibration section (serving_core/calibration.py): the temperature
form, and the map that replaces it."""

from __future__ import annotations

import numpy as np
import pytest

from serving_core.calibration import CalibrationError, calibration_map, positive_probability

MAP = {"margins": [-2.0, 0.0, 3.0], "p_fake": [0.1, 0.4, 0.95]}


def test_the_temperature_form_is_the_two_label_softmax_without_overflow() -> None:
    margins = np.array([0.0, 2.0, -2.0, 800.0, -800.0])
    p = positive_probability(margins, {"temperature": 2.0})
    expected = 1 / (1 + np.exp(-np.clip(margins / 2.0, -700, 700)))
    assert np.allclose(p, expected, rtol=1e-12, atol=0)
    assert np.isnan(positive_probability(np.array([np.nan]), {"temperature": 1.0})).all()


def test_the_map_interpolates_and_is_constant_beyond_its_ends() -> None:
    section = {"temperature": 5.0, "map": MAP}  # the temperature is not used
    p = positive_probability(np.array([-9.0, -2.0, -1.0, 0.0, 1.5, 3.0, 40.0]), section)
    assert p.tolist() == pytest.approx([0.1, 0.1, 0.25, 0.4, 0.675, 0.95, 0.95])
    assert np.isnan(positive_probability(np.array([np.nan]), section)).all()


@pytest.mark.parametrize(
    "bad",
    [
        {"margins": [0.0, 0.0], "p_fake": [0.1, 0.2]},  # margins not increasing
        {"margins": [0.0, 1.0], "p_fake": [0.3, 0.2]},  # P decreasing
        {"margins": [0.0, 1.0], "p_fake": [0.1, 1.2]},  # P above 1
        {"margins": [0.0, 1.0, 2.0], "p_fake": [0.1, 0.2]},  # one P per margin
        {"margins": [0.0], "p_fake": [0.5]},  # a single point
    ],
)
def test_a_bad_map_is_refused(bad: dict) -> None:
    with pytest.raises(CalibrationError):
        calibration_map({"temperature": 1.0, "map": bad})


def test_no_map_means_the_temperature() -> None:
    assert calibration_map({"temperature": 1.0}) is None
