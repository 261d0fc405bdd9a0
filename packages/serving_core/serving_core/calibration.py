"""P(positive) from the calibration section of a bundle's manifest (export/manifest.schema.json).

Two forms. With only `temperature`, P = sigmoid(margin / temperature), the two-label softmax of
the logits divided by the temperature (Guo et al., 2017). With a `map` as well, P is the
piecewise-linear interpolation of the raw margin over the map's points, constant beyond its ends:
a monotone map fitted by isotonic regression on validation, for models whose confidence is off in
different directions on different kinds of text, which one temperature cannot fix.

The margin is the positive label's logit minus the other's. Whoever computes probabilities from a
bundle (the function, the train job's reports) uses this module, so they agree to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class CalibrationError(ValueError):
    pass


@dataclass(frozen=True)
class CalibrationMap:
    margins: np.ndarray  # increasing
    probabilities: np.ndarray  # non-decreasing, in [0, 1]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> CalibrationMap:
        margins = np.asarray(section["margins"], dtype=np.float64)
        probabilities = np.asarray(section["p_fake"], dtype=np.float64)
        if margins.ndim != 1 or margins.shape != probabilities.shape or len(margins) < 2:
            raise CalibrationError("calibration map needs two or more margins, one P each")
        if not (np.all(np.diff(margins) > 0) and np.all(np.diff(probabilities) >= 0)):
            raise CalibrationError("calibration map must be increasing in margin and in P")
        if probabilities[0] < 0 or probabilities[-1] > 1:
            raise CalibrationError("calibration map probabilities must lie in [0, 1]")
        return cls(margins, probabilities)

    def __call__(self, margins: np.ndarray) -> np.ndarray:
        # NaN margins give NaN, as the temperature form does, for the caller's non-finite guard.
        return np.interp(np.asarray(margins, dtype=np.float64), self.margins, self.probabilities)


def calibration_map(calibration: Mapping[str, Any]) -> CalibrationMap | None:
    """The manifest section's map, or None when it holds only a temperature."""
    section = calibration.get("map")
    return None if section is None else CalibrationMap.from_section(section)


def positive_probability(margins: np.ndarray, calibration: Mapping[str, Any]) -> np.ndarray:
    """P(positive) for each raw margin under the manifest's calibration section."""
    mapped = calibration_map(calibration)
    if mapped is not None:
        return mapped(margins)
    scaled = np.asarray(margins, dtype=np.float64) / float(calibration["temperature"])
    small = np.exp(-np.abs(scaled))  # the sigmoid without overflow, exact at both ends
    return np.where(scaled >= 0, 1.0 / (1.0 + small), small / (1.0 + small))
